/*
 * netlog.c — check_crash's network: the mailbox log, an append-only file
 * that outlives each child.  Records "RLM1" ‖ len (LE32) ‖ mailbox id (32)
 * ‖ BLAKE2b-128(bytes) ‖ bytes, each written with one write() on an
 * O_APPEND descriptor and fsync'd before relm_core_outbox_posted; a
 * mailbox's positions (seq 1, 2, …) are its records in file order.  A
 * record torn by a kill is left out by the scan (and truncated by the
 * next process).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "crash/crash.h"

struct mbx *crash_mbx_find(struct netlog *l, const uint8_t id[32], int add)
{
	for (size_t i = 0; i < l->nmb; i++)
		if (memcmp(l->mb[i].id, id, 32) == 0)
			return &l->mb[i];
	if (!add)
		return NULL;
	l->mb = realloc(l->mb, (l->nmb + 1) * sizeof *l->mb);
	if (!l->mb)
		abort();
	memset(&l->mb[l->nmb], 0, sizeof l->mb[0]);
	memcpy(l->mb[l->nmb].id, id, 32);
	return &l->mb[l->nmb++];
}

void crash_log_index(struct netlog *l, size_t i)
{
	struct tu_mail *m = &l->net.v[i];
	struct mbx *b = crash_mbx_find(l, m->mailbox, 1);
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 64;
		if (!(b->idx = realloc(b->idx, b->cap * sizeof *b->idx)))
			abort();
	}
	b->idx[b->n++] = i;
	m->seq = b->n;
}

void crash_net_push(struct tu_net *net, const uint8_t mailbox[32], const uint8_t *buf, size_t len)
{
	struct tu_mail *m;
	if (net->n == net->cap) {
		net->cap = net->cap ? 2 * net->cap : 256;
		if (!(net->v = realloc(net->v, net->cap * sizeof *net->v)))
			abort();
	}
	m = &net->v[net->n++];
	memcpy(m->mailbox, mailbox, 32);
	m->seq = 0;
	if (!(m->buf = malloc(len ? len : 1)))
		abort();
	memcpy(m->buf, buf, len);
	m->len = len;
}

long crash_log_scan(struct netlog *l)
{
	struct stat sb;
	uint8_t *all;
	size_t size, p = 0;
	int fd = open(g_logpath, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &sb) != 0)
		return -errno;
	size = (size_t)(sb.st_size - l->off);
	if (!(all = malloc(size ? size : 1)))
		abort();
	if (pread(fd, all, size, l->off) != (ssize_t)size) {
		close(fd);
		free(all);
		return -EIO;
	}
	close(fd);
	while (size - p >= LOG_HDR) {
		const uint8_t *r = all + p;
		uint32_t len = le32(r + 4);
		uint8_t h[16];
		if (memcmp(r, "RLM1", 4) != 0 || len > RELM_ENVELOPE_MAX || size - p - LOG_HDR < len)
			break;
		body_hash(h, r + LOG_HDR, len);
		if (memcmp(h, r + 40, 16) != 0)
			break;
		crash_net_push(&l->net, r + 8, r + LOG_HDR, len);
		crash_log_index(l, l->net.n - 1);
		p += LOG_HDR + len;
	}
	l->off += (off_t)p;
	free(all);
	return (long)(size - p);
}

int crash_log_write(struct netlog *l, const uint8_t mailbox[32], const uint8_t *buf, size_t len)
{
	uint8_t *rec = malloc(LOG_HDR + len);
	ssize_t w;

	if (!rec)
		abort();
	memcpy(rec, "RLM1", 4);
	for (int i = 0; i < 4; i++)
		rec[4 + i] = (uint8_t)(len >> (8 * i));
	memcpy(rec + 8, mailbox, 32);
	body_hash(rec + 40, buf, len);
	memcpy(rec + LOG_HDR, buf, len);
	w = write(l->fd, rec, LOG_HDR + len);
	free(rec);
	if (w != (ssize_t)(LOG_HDR + len))
		return -EIO;
	l->off += (off_t)(LOG_HDR + len);
	return 0;
}

int crash_log_append(struct netlog *l, const uint8_t mailbox[32], const uint8_t *buf, size_t len)
{
	int rc = crash_log_write(l, mailbox, buf, len);
	return rc ? rc : fsync(l->fd) == 0 ? 0 : -errno;
}

int crash_log_on_post(void *ctx, const struct tu_mail *m)
{
	struct netlog *l = ctx;
	int rc = crash_log_append(l, m->mailbox, m->buf, m->len);
	if (rc == 0)
		crash_log_index(l, l->net.n - 1);   /* gives it the seq tu_pump gave it */
	return rc;
}
