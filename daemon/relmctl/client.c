/*
 * client.c — relmctl's connection to relmd: one Unix socket, requests
 * written as JSON lines, replies read back by id (events in between are
 * dropped; `listen` reads them itself).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/server.h"
#include "relmctl/relmctl.h"

int client_connect(struct client *cl, const char *path)
{
	memset(cl, 0, sizeof *cl);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, "%s: socket path too long: %s\n", prog, path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	cl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cl->fd < 0 || connect(cl->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, "%s: cannot connect to relmd at %s: %s\n", prog, path, strerror(errno));
		if (cl->fd >= 0)
			close(cl->fd);
		cl->fd = -1;
		return -1;
	}
	return 0;
}

int client_send(struct client *cl, const char *s)
{
	size_t n = strlen(s), off = 0;
	while (off < n) {
		ssize_t w = send(cl->fd, s + off, n - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		off += (size_t)w;
	}
	return 0;
}

cJSON *client_read(struct client *cl)
{
	for (;;) {
		char *nl = cl->len ? memchr(cl->buf, '\n', cl->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - cl->buf);
			cJSON *j = cJSON_ParseWithLength(cl->buf, n);
			memmove(cl->buf, nl + 1, cl->len - n - 1);
			cl->len -= n + 1;
			if (!j) {
				fprintf(stderr, "%s: relmd sent a line that is not JSON\n", prog);
				return NULL;
			}
			return j;
		}
		if (cl->cap - cl->len < 65536) {
			size_t cap = cl->cap ? cl->cap * 2 : 65536;
			if (cap > (size_t)RELMD_OUT_MAX * 2)
				return NULL;
			char *p = realloc(cl->buf, cap);
			if (!p)
				return NULL;
			cl->buf = p;
			cl->cap = cap;
		}
		ssize_t r = recv(cl->fd, cl->buf + cl->len, cl->cap - cl->len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return NULL;
		cl->len += (size_t)r;
	}
}

void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
}

cJSON *call(struct client *cl, const char *method, cJSON *params)
{
	cJSON *req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "jsonrpc", "2.0");
	cJSON_AddNumberToObject(req, "id", 1);
	cJSON_AddStringToObject(req, "method", method);
	if (params)
		cJSON_AddItemReferenceToObject(req, "params", params);
	char *s = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	cJSON_free(s);
	int r = client_send(cl, line);
	free(line);
	if (r < 0) {
		fprintf(stderr, "%s: sending to relmd: %s\n", prog, strerror(errno));
		return NULL;
	}
	for (;;) {
		cJSON *j = client_read(cl);
		if (!j) {
			fprintf(stderr, "%s: relmd closed the connection\n", prog);
			return NULL;
		}
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
		if (cJSON_IsNumber(id) && id->valuedouble == 1)
			return j;
		if (id && cJSON_IsNull(id) && cJSON_GetObjectItemCaseSensitive(j, "error"))
			return j;     /* refused (permission, limit) or a framing error */
		cJSON_Delete(j);  /* an event notification */
	}
}
