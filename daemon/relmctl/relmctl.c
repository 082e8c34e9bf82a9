/*
 * relmctl.c — a thin command-line client of relmd's socket API.
 *
 *   relmctl [--socket PATH] [--json] COMMAND [ARGS]
 *
 * Every method of the method table (methods.c) is a command, with its
 * parameters as --options (underscores may be written as dashes) or, in
 * the table's `args` order, as positional arguments; help and parameter
 * checks come from the same table, so relmctl and the API cannot drift.
 * Three commands are relmctl's own: `listen` (subscribe, then print each
 * event as one JSON line), `tree` (draw relationship.show's chain tree,
 * as text or Graphviz with --dot) and `web` (start relm-web for this relmd
 * and open it in a browser).
 *
 * Output: readable text by default; --json prints the raw result (or the
 * raw error object) as one JSON line.
 * Exit codes: 0 success, 1 the daemon answered with an error, 2 usage,
 * 3 cannot connect to relmd (or the connection broke).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "error.h"
#include "api/jsonrpc.h"
#include "api/methods.h"
#include "api/server.h"

enum {
	EXIT_RPC = 1,
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3,
};

static int opt_json;
static const char *prog = "relmctl";

/* ---- help, from the table ------------------------------------------------------------ */

static void opt_name(char *dst, size_t n, const char *param)
{
	snprintf(dst, n, "%s", param);
	for (char *p = dst; *p; p++)
		if (*p == '_')
			*p = '-';
}

static const char *type_meta(const struct relmd_param *p)
{
	switch (p->type) {
	case RELMD_T_HEXID: return "HEX";
	case RELMD_T_INT: return "N";
	case RELMD_T_ARRAY: return "A,B,...";
	case RELMD_T_OBJECT: return "JSON";
	case RELMD_T_BOOL: return "";
	default: return "TEXT";
	}
}

/* Is param `name` positional (listed in m->args)? */
static int positional_index(const struct relmd_method *m, const char *name)
{
	const char *a = m->args;
	size_t n = strlen(name);
	int i = 0;
	while (a && *a) {
		while (*a == ' ')
			a++;
		const char *e = a;
		while (*e && *e != ' ')
			e++;
		if ((size_t)(e - a) == n && strncmp(a, name, n) == 0)
			return i;
		if (e > a)
			i++;
		a = e;
	}
	return -1;
}

static const char *positional_name(const struct relmd_method *m, int k, char *buf, size_t n)
{
	const char *a = m->args;
	int i = 0;
	while (a && *a) {
		while (*a == ' ')
			a++;
		const char *e = a;
		while (*e && *e != ' ')
			e++;
		if (e > a) {
			if (i == k) {
				snprintf(buf, n, "%.*s", (int)(e - a), a);
				return buf;
			}
			i++;
		}
		a = e;
	}
	return NULL;
}

static void synopsis(FILE *f, const struct relmd_method *m, char *out, size_t outn)
{
	size_t len = 0;
	char name[64];
	len += (size_t)snprintf(out + len, outn - len, "%s", m->name);
	for (int k = 0; positional_name(m, k, name, sizeof name) && len < outn; k++) {
		int i = relmd_method_param_index(m, name);
		const struct relmd_param *p = &m->params[i];
		char up[64];
		snprintf(up, sizeof up, "%s", name);
		for (char *c = up; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		len += (size_t)snprintf(out + len, outn - len,
					(p->flags & RELMD_P_REQUIRED) ? " %s" : " [%s]", up);
	}
	for (int i = 0; m->params[i].name && len < outn; i++) {
		const struct relmd_param *p = &m->params[i];
		if (positional_index(m, p->name) >= 0)
			continue;
		char o[64];
		opt_name(o, sizeof o, p->name);
		const char *meta = type_meta(p);
		len += (size_t)snprintf(out + len, outn - len,
					(p->flags & RELMD_P_REQUIRED) ? " --%s%s%s" : " [--%s%s%s]",
					o, *meta ? " " : "", meta);
	}
	(void)f;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: %s [--socket PATH] [--json] COMMAND [ARGS]\n\n"
		"A client of relmd's socket API (proto/api.md).\n\ncommands:\n", prog);
	char syn[512];
	for (unsigned i = 0; i < relmd_method_count; i++) {
		const struct relmd_method *m = &relmd_method_table[i];
		synopsis(f, m, syn, sizeof syn);
		fprintf(f, "  %s\n      %s\n", syn, m->help);
	}
	fprintf(f,
		"  check [--quick]\n"
		"      store.check, and exit %d when the store is damaged\n"
		"  listen [--since N] [--events T1,T2]\n"
		"      subscribe and print every event as one JSON line\n"
		"  tree RELATIONSHIP [--dot]\n"
		"      draw a relationship's chain tree (Graphviz with --dot)\n"
		"  web [--listen HOST:PORT]\n"
		"      start relm-web for this relmd, print its address and open it\n"
		"      in a browser where there is one (stops with Ctrl+C)\n"
		"\n"
		"options:\n"
		"  --socket PATH  relmd's socket (default $RELM_SOCKET, else\n"
		"                 $XDG_RUNTIME_DIR/relm/relmd.sock)\n"
		"  --json         print raw JSON results instead of text\n"
		"  COMMAND --help details of one command\n"
		"\n"
		"exit codes: 0 ok, %d relmd reported an error, %d usage, %d cannot connect\n",
		EXIT_RPC, EXIT_RPC, EXIT_USAGE, EXIT_CONNECT);
}

static void method_help(FILE *f, const struct relmd_method *m)
{
	char syn[512];
	synopsis(f, m, syn, sizeof syn);
	fprintf(f, "usage: %s [--socket PATH] [--json] %s\n\n%s\n", prog, syn, m->help);
	if (m->params[0].name)
		fprintf(f, "\nparameters:\n");
	for (int i = 0; m->params[i].name; i++) {
		const struct relmd_param *p = &m->params[i];
		char o[64];
		opt_name(o, sizeof o, p->name);
		fprintf(f, "  --%-16s %s%s", o, p->help ? p->help : "",
			(p->flags & RELMD_P_REQUIRED) ? " (required)" : "");
		if (p->type == RELMD_T_INT)
			fprintf(f, " [%lld..%lld]", (long long)p->min, (long long)p->max);
		else if (p->type == RELMD_T_HEXID)
			fprintf(f, " [%lld hex chars]", (long long)p->max);
		if (p->choices) {
			fprintf(f, " {");
			for (int k = 0; p->choices[k]; k++)
				fprintf(f, "%s%s", k ? "," : "", p->choices[k]);
			fprintf(f, "}");
		}
		fprintf(f, "\n");
	}
}

/* ---- argument → params ------------------------------------------------------------------ */

static int parse_bool(const char *s, int *out)
{
	if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1") || !strcmp(s, "on"))
		*out = 1;
	else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0") || !strcmp(s, "off"))
		*out = 0;
	else
		return -1;
	return 0;
}

static int add_value(cJSON *params, const struct relmd_param *p, const char *v)
{
	if (cJSON_GetObjectItemCaseSensitive(params, p->name)) {
		fprintf(stderr, "%s: %s given twice\n", prog, p->name);
		return -1;
	}
	cJSON *item = NULL;
	switch (p->type) {
	case RELMD_T_INT: {
		char *end;
		errno = 0;
		long long n = strtoll(v, &end, 10);
		if (errno || !*v || *end) {
			fprintf(stderr, "%s: %s: '%s' is not an integer\n", prog, p->name, v);
			return -1;
		}
		item = cJSON_CreateNumber((double)n);
		break;
	}
	case RELMD_T_BOOL: {
		int b;
		if (parse_bool(v, &b) < 0) {
			fprintf(stderr, "%s: %s: '%s' is not true or false\n", prog, p->name, v);
			return -1;
		}
		item = cJSON_CreateBool(b);
		break;
	}
	case RELMD_T_ARRAY: {
		item = cJSON_CreateArray();
		const char *s = v;
		while (item && *s) {
			const char *e = strchr(s, ',');
			size_t n = e ? (size_t)(e - s) : strlen(s);
			char *one = strndup(s, n);
			if (one && n)
				cJSON_AddItemToArray(item, cJSON_CreateString(one));
			free(one);
			s += n + (e ? 1 : 0);
		}
		break;
	}
	case RELMD_T_OBJECT:
		item = cJSON_Parse(v);
		if (!item) {
			fprintf(stderr, "%s: %s: not valid JSON\n", prog, p->name);
			return -1;
		}
		break;
	default:
		item = cJSON_CreateString(v);
	}
	if (!item)
		return -1;
	cJSON_AddItemToObject(params, p->name, item);
	return 0;
}

/* Build params for m from argv.  0, or -1 after printing why. */
static int build_params(const struct relmd_method *m, int argc, char **argv, cJSON *params,
			int *help)
{
	int pos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			*help = 1;
			return 0;
		}
		if (a[0] == '-' && a[1] == '-' && a[2]) {
			char name[128];
			snprintf(name, sizeof name, "%s", a + 2);
			char *eq = strchr(name, '=');
			const char *val = NULL;
			if (eq) {
				*eq = '\0';
				val = a + 2 + (eq - name) + 1;
			}
			for (char *c = name; *c; c++)
				if (*c == '-')
					*c = '_';
			int neg = 0;
			int idx = relmd_method_param_index(m, name);
			if (idx < 0 && !strncmp(name, "no_", 3) && !val) {
				idx = relmd_method_param_index(m, name + 3);
				neg = idx >= 0 && m->params[idx].type == RELMD_T_BOOL;
				if (!neg)
					idx = -1;
			}
			if (idx < 0) {
				fprintf(stderr, "%s: %s has no option %s (see %s %s --help)\n", prog,
					m->name, a, prog, m->name);
				return -1;
			}
			const struct relmd_param *p = &m->params[idx];
			if (p->type == RELMD_T_BOOL && !val)
				val = neg ? "false" : "true";
			if (!val) {
				if (i + 1 >= argc) {
					fprintf(stderr, "%s: %s needs a value\n", prog, a);
					return -1;
				}
				val = argv[++i];
			}
			if (add_value(params, p, val) < 0)
				return -1;
			continue;
		}
		char name[64];
		const char *pn;
		/* skip positionals already given as options */
		while ((pn = positional_name(m, pos, name, sizeof name)) &&
		       cJSON_GetObjectItemCaseSensitive(params, pn))
			pos++;
		if (!pn) {
			fprintf(stderr, "%s: %s: unexpected argument '%s'\n", prog, m->name, a);
			return -1;
		}
		if (add_value(params, &m->params[relmd_method_param_index(m, pn)], a) < 0)
			return -1;
		pos++;
	}
	return 0;
}

/* ---- connection ----------------------------------------------------------------------- */

struct client {
	int fd;
	char *buf;
	size_t len, cap;
};

static int client_connect(struct client *cl, const char *path)
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

static int client_send(struct client *cl, const char *s)
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

/* Next line as parsed JSON (caller frees), NULL at EOF or error. */
static cJSON *client_read(struct client *cl)
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

static void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
}

/* Call and wait for the reply with our id.  Returns the reply (caller
 * frees) or NULL when the connection failed (message printed). */
static cJSON *call(struct client *cl, const char *method, cJSON *params)
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

/* ---- output -------------------------------------------------------------------------------- */

static void print_scalar(const cJSON *v)
{
	if (cJSON_IsString(v))
		printf("%s", v->valuestring);
	else if (cJSON_IsBool(v))
		printf("%s", cJSON_IsTrue(v) ? "yes" : "no");
	else if (cJSON_IsNull(v))
		printf("-");
	else if (cJSON_IsNumber(v))
		printf("%.17g", v->valuedouble);
	else {
		char *s = cJSON_PrintUnformatted(v);
		printf("%s", s ? s : "?");
		cJSON_free(s);
	}
}

static void render(const cJSON *v, int indent);

static void render_members(const cJSON *obj, int indent, int first_dash)
{
	int width = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, obj)
		if ((int)strlen(it->string) > width)
			width = (int)strlen(it->string);
	int first = 1;
	cJSON_ArrayForEach(it, obj) {
		int ind = indent + (first_dash ? 2 : 0);
		if (first && first_dash)
			printf("%*s- ", indent, "");
		else
			printf("%*s", ind, "");
		first = 0;
		if (cJSON_IsObject(it) || (cJSON_IsArray(it) && cJSON_GetArraySize(it) &&
					   cJSON_IsObject(cJSON_GetArrayItem(it, 0)))) {
			printf("%s:\n", it->string);
			render(it, ind + 2);
		} else {
			printf("%-*s  ", width, it->string);
			if (cJSON_IsArray(it)) {
				const cJSON *e;
				int k = 0;
				cJSON_ArrayForEach(e, it) {
					printf("%s", k++ ? ", " : "");
					print_scalar(e);
				}
				if (!k)
					printf("(none)");
			} else {
				print_scalar(it);
			}
			printf("\n");
		}
	}
}

static void render(const cJSON *v, int indent)
{
	if (cJSON_IsObject(v)) {
		render_members(v, indent, 0);
	} else if (cJSON_IsArray(v)) {
		const cJSON *e;
		if (!cJSON_GetArraySize(v))
			printf("%*s(none)\n", indent, "");
		cJSON_ArrayForEach(e, v) {
			if (cJSON_IsObject(e)) {
				render_members(e, indent, 1);
			} else {
				printf("%*s- ", indent, "");
				print_scalar(e);
				printf("\n");
			}
		}
	} else {
		printf("%*s", indent, "");
		print_scalar(v);
		printf("\n");
	}
}

/* Print a reply; return the exit code. */
static int report(const char *method, const cJSON *reply)
{
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(reply, "result");
	if (err) {
		if (opt_json) {
			char *s = cJSON_PrintUnformatted(err);
			printf("%s\n", s ? s : "{}");
			cJSON_free(s);
		}
		const cJSON *msg = cJSON_GetObjectItemCaseSensitive(err, "message");
		const cJSON *data = cJSON_GetObjectItemCaseSensitive(err, "data");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(data, "code");
		fprintf(stderr, "%s: %s: %s%s%s%s\n", prog, method,
			cJSON_IsString(msg) ? msg->valuestring : "error",
			cJSON_IsString(code) ? " (" : "", cJSON_IsString(code) ? code->valuestring : "",
			cJSON_IsString(code) ? ")" : "");
		return EXIT_RPC;
	}
	if (opt_json) {
		char *s = cJSON_PrintUnformatted(res);
		printf("%s\n", s ? s : "null");
		cJSON_free(s);
	} else if (res) {
		render(res, 0);
	}
	return 0;
}

/* ---- device pair / join ---------------------------------------------------------------------- */

/* device.pair.join never waits in relmd: while the WELCOME is awaited it
 * fails with `pending`, and calling again with the same code resumes.
 * Call until it answers otherwise, for at most RELM_PAIR_WAIT_MS (the
 * environment may shorten it), then report `timeout`. */
static cJSON *call_join(struct client *cl, cJSON *params)
{
	const char *env = getenv("RELM_PAIR_WAIT_MS");
	long wait_ms = env && *env ? atol(env) : 60000;
	for (long waited = 0;; waited += 200) {
		cJSON *reply = call(cl, "device.pair.join", params);
		const cJSON *err = cJSON_GetObjectItemCaseSensitive(reply, "error");
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(err, "data"), "code");
		if (!reply || !cJSON_IsString(code) || strcmp(code->valuestring, "pending") != 0)
			return reply;
		cJSON_Delete(reply);
		if (waited >= wait_ms) {
			fprintf(stderr, "%s: device.pair.join: no answer from the paired device (timeout); "
			        "the same command resumes\n", prog);
			return NULL;
		}
		usleep(200 * 1000);
	}
}

/* ---- tree ---------------------------------------------------------------------------------- */

static const char *str_of(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void tree_text(const cJSON *nodes, const char *parent, const char *chosen, int depth)
{
	const cJSON *n;
	cJSON_ArrayForEach(n, nodes) {
		const char *p = str_of(n, "parent");
		const char *id = str_of(n, "node");
		if (!id || (parent ? !p || strcmp(p, parent) : p != NULL && *p))
			continue;
		const char *side = str_of(n, "side");
		int valid = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "valid"));
		printf("%*s%s %.12s  %s%s%s\n", depth * 2, "", depth ? "└─" : "●", id,
		       side ? side : "?", valid ? "" : " (unacknowledged)",
		       chosen && !strcmp(chosen, id) ? "  ← chosen" : "");
		tree_text(nodes, id, chosen, depth + 1);
	}
}

static int cmd_tree(struct client *cl, int argc, char **argv)
{
	const char *rel = NULL;
	int dot = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--dot"))
			dot = 1;
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: %s tree RELATIONSHIP [--dot]\n", prog);
			return 0;
		} else if (!rel && argv[i][0] != '-')
			rel = argv[i];
		else {
			fprintf(stderr, "%s: tree: unexpected argument '%s'\n", prog, argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!rel) {
		fprintf(stderr, "usage: %s tree RELATIONSHIP [--dot]\n", prog);
		return EXIT_USAGE;
	}
	cJSON *params = cJSON_CreateObject();
	cJSON_AddStringToObject(params, "relationship", rel);
	cJSON *reply = call(cl, "relationship.show", params);
	cJSON_Delete(params);
	if (!reply)
		return EXIT_CONNECT;
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(reply, "result");
	if (!res || opt_json) {
		int r = report("relationship.show", reply);
		cJSON_Delete(reply);
		return r;
	}
	const cJSON *tree = cJSON_GetObjectItemCaseSensitive(res, "tree");
	const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(tree, "nodes");
	const char *chosen = str_of(tree, "chosen");
	if (dot) {
		printf("digraph chain_tree {\n  rankdir=LR;\n");
		const cJSON *n;
		cJSON_ArrayForEach(n, nodes) {
			const char *id = str_of(n, "node"), *p = str_of(n, "parent");
			const char *side = str_of(n, "side");
			if (!id)
				continue;
			printf("  \"%s\" [label=\"%.8s\\n%s\"%s%s];\n", id, id, side ? side : "",
			       side && !strcmp(side, "ours") ? " shape=box" : "",
			       chosen && !strcmp(chosen, id) ? " style=bold color=blue" : "");
			if (p && *p)
				printf("  \"%s\" -> \"%s\";\n", p, id);
		}
		printf("}\n");
	} else {
		printf("relationship %s\n", rel);
		tree_text(nodes, NULL, chosen, 0);
		const cJSON *pend = cJSON_GetObjectItemCaseSensitive(tree, "pending");
		if (pend) {
			printf("pending  ");
			if (cJSON_IsArray(pend))
				printf("%d", cJSON_GetArraySize(pend));
			else
				print_scalar(pend);
			printf("\n");
		}
	}
	cJSON_Delete(reply);
	return 0;
}

/* ---- listen --------------------------------------------------------------------------------- */

static int cmd_listen(struct client *cl, int argc, char **argv)
{
	const struct relmd_method *m = relmd_method_find("subscribe");
	cJSON *params = cJSON_CreateObject();
	int help = 0;
	if (build_params(m, argc, argv, params, &help) < 0) {
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	if (help) {
		printf("usage: %s listen [--since N] [--events TYPE,...]\n\n"
		       "Subscribe and print each event's params as one JSON line until relmd\n"
		       "closes the connection.  --since N first replays events after seq N.\n"
		       "Types:", prog);
		for (int t = RELM_EV_NONE + 1; t < RELM_EV_COUNT; t++)
			printf(" %s", relm_event_name(t));
		printf("\n");
		cJSON_Delete(params);
		return 0;
	}
	cJSON *norm = NULL;
	struct jsonrpc_error err = { 0 };
	if (relmd_params_validate(m, params, &norm, &err) < 0) {
		fprintf(stderr, "%s: listen: %s\n", prog, err.message);
		cJSON_Delete(err.data);
		cJSON_Delete(params);
		return EXIT_USAGE;
	}
	cJSON_Delete(norm);
	cJSON *reply = call(cl, "subscribe", params);
	cJSON_Delete(params);
	if (!reply)
		return EXIT_CONNECT;
	if (cJSON_GetObjectItemCaseSensitive(reply, "error")) {
		int r = report("subscribe", reply);
		cJSON_Delete(reply);
		return r;
	}
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(reply, "result");
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "gap")))
		fprintf(stderr, "%s: some events since %s are no longer retained\n", prog,
			"the given seq");
	cJSON_Delete(reply);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (;;) {
		cJSON *j = client_read(cl);
		if (!j)
			return 0;       /* relmd closed: the stream ended */
		const cJSON *meth = cJSON_GetObjectItemCaseSensitive(j, "method");
		if (cJSON_IsString(meth) && !strcmp(meth->valuestring, "event")) {
			char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(j, "params"));
			if (s)
				printf("%s\n", s);
			cJSON_free(s);
		}
		cJSON_Delete(j);
	}
}

/* ---- web ------------------------------------------------------------------------------------ */

static pid_t web_child;

static void web_forward(int sig)
{
	if (web_child > 0)
		kill(web_child, sig);
}

/* relm-web beside this program (a build tree, an install), else from PATH. */
static void web_program(char *out, size_t n)
{
	char self[PATH_MAX - 16];
	ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
	if (k > 0) {
		self[k] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, n, "%s/relm-web", self);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, n, "relm-web");
}

/* Open url in a browser without putting the token on any command line
 * (other users can read those in /proc): a 0600 page that redirects to it,
 * given to xdg-open.  Returns 1 if a browser was asked, 0 if there is none. */
static int web_open(const char *url, char *page, size_t n)
{
	page[0] = '\0';
	if (!getenv("DISPLAY") && !getenv("WAYLAND_DISPLAY"))
		return 0;
	const char *path = getenv("PATH");
	int found = 0;
	for (const char *p = path ? path : ""; *p && !found;) {
		const char *e = strchr(p, ':');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		char cand[PATH_MAX];
		snprintf(cand, sizeof cand, "%.*s/xdg-open", (int)len, p);
		found = len && access(cand, X_OK) == 0;
		p += len + (e ? 1 : 0);
	}
	if (!found)
		return 0;
	const char *dir = getenv("XDG_RUNTIME_DIR");
	snprintf(page, n, "%s/relm-web-%ld.html", dir && *dir == '/' ? dir : "/tmp", (long)getpid());
	int fd = open(page, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		page[0] = '\0';
		return 0;
	}
	dprintf(fd, "<!doctype html><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" "
		"content=\"0;url=%s\"><title>relm</title><p><a href=\"%s\">Open relm</a></p>\n",
		url, url);
	close(fd);
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		char arg[PATH_MAX + 8];
		snprintf(arg, sizeof arg, "file://%s", page);
		execlp("xdg-open", "xdg-open", arg, (char *)NULL);
		_exit(127);
	}
	return pid > 0;
}

static int cmd_web(const char *sock, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: %s web [--listen HOST:PORT]\n\n"
			       "Start relm-web for this relmd: print the address to open (it carries\n"
			       "an access token) and open it in a browser where there is one.\n"
			       "relm-web runs until Ctrl+C.\n", prog);
			return 0;
		}
		if (strcmp(argv[i], "--listen") || i + 1 >= argc) {
			fprintf(stderr, "usage: %s web [--listen HOST:PORT]\n", prog);
			return EXIT_USAGE;
		}
		i++;
	}
	char exe[PATH_MAX];
	web_program(exe, sizeof exe);
	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
		return EXIT_CONNECT;
	}
	fflush(NULL);
	web_child = fork();
	if (web_child == 0) {
		dup2(out[1], 1);
		char *args[8] = { "relm-web", "--socket", (char *)(uintptr_t)sock };
		int k = 3;
		for (int i = 0; i < argc && k < 7; i++)
			args[k++] = argv[i];
		args[k] = NULL;
		if (strchr(exe, '/'))
			execv(exe, args);
		else
			execvp(exe, args);
		fprintf(stderr, "%s: cannot run %s: %s\n", prog, exe, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	if (web_child < 0) {
		close(out[0]);
		fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
		return EXIT_CONNECT;
	}
	signal(SIGINT, web_forward);
	signal(SIGTERM, web_forward);
	signal(SIGHUP, web_forward);
	char url[256] = "";
	size_t len = 0;
	while (len + 1 < sizeof url) {
		ssize_t r = read(out[0], url + len, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || url[len] == '\n')
			break;
		len++;
	}
	url[len] = '\0';
	close(out[0]);
	char page[PATH_MAX] = "";
	if (len) {
		printf("%s\n", url);
		if (!web_open(url, page, sizeof page))
			fprintf(stderr, "%s: open that address in a browser on this machine; Ctrl+C stops relm-web\n",
				prog);
		fflush(stdout);
	}
	sodium_memzero(url, sizeof url);
	int st = 0;
	while (waitpid(web_child, &st, 0) < 0 && errno == EINTR)
		;
	if (page[0])
		unlink(page);
	if (WIFEXITED(st))
		return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 2 ? EXIT_USAGE : EXIT_CONNECT;
	return WIFSIGNALED(st) && (WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM) ? 0 : EXIT_CONNECT;
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	const char *sock = getenv("RELM_SOCKET");
	char defsock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int i = 1;
	for (; i < argc; i++) {
		if (!strcmp(argv[i], "--socket")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "%s: --socket needs a path\n", prog);
				return EXIT_USAGE;
			}
			sock = argv[++i];
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			sock = argv[i] + 9;
		} else if (!strcmp(argv[i], "--json")) {
			opt_json = 1;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "help")) {
			if (!strcmp(argv[i], "help") && i + 1 < argc && relmd_method_find(argv[i + 1])) {
				method_help(stdout, relmd_method_find(argv[i + 1]));
				return 0;
			}
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--version")) {
			printf("relmctl %s (api %d)\n", RELMD_VERSION, RELMD_API_VERSION);
			return 0;
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "%s: unknown option %s\n", prog, argv[i]);
			usage(stderr);
			return EXIT_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[i++];
	const struct relmd_method *m = NULL;
	/* `check` is store.check that fails (exit 1) when the store is not
	 * sound, for scripts and cron */
	int check = !strcmp(cmd, "check");
	if (check)
		cmd = "store.check";
	cJSON *params = NULL;
	char joined[64];
	/* `device pair PROTON` and `device join CODE` (README) */
	if (!strcmp(cmd, "device") && i < argc && !strcmp(argv[i], "pair")) {
		cmd = "device.pair.begin";
		i++;
	} else if (!strcmp(cmd, "device") && i < argc && !strcmp(argv[i], "join")) {
		cmd = "device.pair.join";
		i++;
	}
	if (strcmp(cmd, "listen") && strcmp(cmd, "tree") && strcmp(cmd, "web")) {
		m = relmd_method_find(cmd);
		/* "device list" is "device.list": a method's name may also be
		 * typed as words (up to three) */
		for (int w = 0; !m && w < 2 && i + w < argc && argv[i + w][0] != '-'; w++) {
			size_t n = 0;
			int ok = 1;
			for (int k = -1; k <= w && ok; k++) {
				const char *word = k < 0 ? cmd : argv[i + k];
				int r = snprintf(joined + n, sizeof joined - n, "%s%s", k < 0 ? "" : ".", word);
				ok = r > 0 && (size_t)r < sizeof joined - n;
				n += ok ? (size_t)r : 0;
			}
			if (ok && (m = relmd_method_find(joined)) != NULL) {
				cmd = m->name;
				i += w + 1;
			}
		}
		if (!m) {
			fprintf(stderr, "%s: unknown command '%s' (see %s --help)\n", prog, cmd, prog);
			return EXIT_USAGE;
		}
		params = cJSON_CreateObject();
		int help = 0;
		if (!params || build_params(m, argc - i, argv + i, params, &help) < 0) {
			cJSON_Delete(params);
			return EXIT_USAGE;
		}
		if (help) {
			method_help(stdout, m);
			cJSON_Delete(params);
			return 0;
		}
		/* Same validation as the daemon, before connecting. */
		cJSON *norm = NULL;
		struct jsonrpc_error err = { 0 };
		if (relmd_params_validate(m, params, &norm, &err) < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, m->name, err.message);
			cJSON_Delete(err.data);
			cJSON_Delete(params);
			return EXIT_USAGE;
		}
		cJSON_Delete(norm);
	}
	if (!sock || !*sock) {
		if (relmd_default_socket_path(defsock, sizeof defsock) < 0) {
			fprintf(stderr, "%s: XDG_RUNTIME_DIR is not set; pass --socket PATH\n", prog);
			cJSON_Delete(params);
			return EXIT_CONNECT;
		}
		sock = defsock;
	}
	if (!strcmp(cmd, "web"))
		return cmd_web(sock, argc - i, argv + i);
	struct client cl;
	if (client_connect(&cl, sock) < 0) {
		cJSON_Delete(params);
		return EXIT_CONNECT;
	}
	int code;
	if (!strcmp(cmd, "listen")) {
		code = cmd_listen(&cl, argc - i, argv + i);
	} else if (!strcmp(cmd, "tree")) {
		code = cmd_tree(&cl, argc - i, argv + i);
	} else {
		int joining = !strcmp(m->name, "device.pair.join");
		cJSON *reply = joining ? call_join(&cl, params) : call(&cl, m->name, params);
		code = reply ? report(m->name, reply) : joining ? EXIT_RPC : EXIT_CONNECT;
		if (check && code == 0 &&
		    !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
			    cJSON_GetObjectItemCaseSensitive(reply, "result"), "ok"))) {
			fprintf(stderr, "%s: check: the store is damaged (see above)\n", prog);
			code = EXIT_RPC;
		}
		cJSON_Delete(reply);
	}
	cJSON_Delete(params);
	client_close(&cl);
	return code;
}
