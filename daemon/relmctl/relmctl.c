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
 * `device pair` also draws the code as a QR code for a phone camera.
 * The parts: client.c (the connection), render.c (output), pair.c,
 * tree.c, listen.c, web.c (relmctl's own commands), qr_text.c.
 *
 * Output: readable text by default; --json prints the raw result (or the
 * raw error object) as one JSON line.
 * Exit codes: 0 success, 1 the daemon answered with an error, 2 usage,
 * 3 cannot connect to relmd (or the connection broke).
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include <cjson/cJSON.h>

#include "error.h"
#include "api/jsonrpc.h"
#include "api/methods.h"
#include "api/server.h"
#include "relmctl/relmctl.h"

int opt_json;
const char *prog = "relmctl";

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
int build_params(const struct relmd_method *m, int argc, char **argv, cJSON *params,
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
		code = !reply ? (joining ? EXIT_RPC : EXIT_CONNECT)
		     : !strcmp(m->name, "device.pair.begin") ? pair_report(reply)
		     : report(m->name, reply);
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

