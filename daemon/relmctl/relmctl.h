/*
 * relmctl.h — what the parts of relmctl share: the options, the connection
 * to relmd (client.c), the output (render.c) and relmctl's own commands
 * (pair.c, tree.c, listen.c, web.c).
 */
#ifndef RELMCTL_H
#define RELMCTL_H

#include <stddef.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "api/methods.h"

enum {
	EXIT_RPC = 1,
	EXIT_USAGE = 2,
	EXIT_CONNECT = 3,
};

extern int opt_json;        /* --json: raw results, one JSON line */
extern const char *prog;    /* "relmctl", for messages */

/* ---- client.c: one connection to relmd's socket ---- */
struct client {
	int fd;
	char *buf;
	size_t len, cap;
};
int client_connect(struct client *cl, const char *path);
int client_send(struct client *cl, const char *s);
/* Next line as parsed JSON (caller frees), NULL at EOF or error. */
cJSON *client_read(struct client *cl);
void client_close(struct client *cl);
/* Call and wait for the reply with our id.  Returns the reply (caller
 * frees) or NULL when the connection failed (message printed). */
cJSON *call(struct client *cl, const char *method, cJSON *params);

/* ---- relmctl.c: command-line arguments to a method's params ---- */
int build_params(const struct relmd_method *m, int argc, char **argv, cJSON *params, int *help);

/* ---- render.c: a reply as text (or, with --json, as it came); the exit code ---- */
int report(const char *method, const cJSON *reply);
/* one scalar (string, number, bool, null) as text, no newline */
void print_scalar(const cJSON *v);

/* ---- relmctl's own commands ---- */
/* device.pair.join, called again while it answers `pending` (pair.c) */
cJSON *call_join(struct client *cl, cJSON *params);
/* device.pair.begin's reply: the code, its expiry and its QR code (pair.c) */
int pair_report(const cJSON *reply);
int cmd_tree(struct client *cl, int argc, char **argv);
int cmd_listen(struct client *cl, int argc, char **argv);
int cmd_web(const char *sock, int argc, char **argv);

/* ---- qr_text.c: a QR code of text drawn with block characters, two
 * rows of modules per line, with its quiet zone.  ansi: wrap each line in
 * black-on-white escapes (for a terminal of any colours).  Returns 0, or
 * -1 when the text does not fit a QR code. ---- */
int qr_text(FILE *f, const char *text, int ansi);

#endif
