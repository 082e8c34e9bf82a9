/*
 * qr.c — QR codes as SVG (qr.h).
 */
#include "web/qr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "web/guard.h"

enum { QR_QUIET = 4 };                  /* modules of white around the code */

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	if (b->oom)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = 1;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
}

int qr_svg(const char *text, size_t len, char **svg, size_t *svg_len)
{
	if (!len || len > WEB_QR_TEXT_MAX)
		return -EINVAL;
	QRcode *q = QRcode_encodeData((int)len, (const unsigned char *)text, 0, QR_ECLEVEL_M);
	if (!q)
		q = QRcode_encodeData((int)len, (const unsigned char *)text, 0, QR_ECLEVEL_L);
	if (!q)
		return errno == ENOMEM ? -ENOMEM : -EINVAL;
	int w = q->width, size = w + 2 * QR_QUIET;
	struct buf b = { .cap = 4096 };
	b.p = malloc(b.cap);
	if (!b.p) {
		QRcode_free(q);
		return -ENOMEM;
	}
	b.p[0] = '\0';
	put(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
		"shape-rendering=\"crispEdges\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
		"<path fill=\"#000\" d=\"", size, size, size, size);
	for (int y = 0; y < w; y++) {
		for (int x = 0; x < w;) {
			/* Bit 0 of each module byte is "dark" (libqrencode's layout). */
			if (!(q->data[y * w + x] & 1)) {
				x++;
				continue;
			}
			int run = 1;
			while (x + run < w && (q->data[y * w + x + run] & 1))
				run++;
			put(&b, "M%d %dh%dv1h-%dz", x + QR_QUIET, y + QR_QUIET, run, run);
			x += run;
		}
	}
	put(&b, "\"/></svg>\n");
	QRcode_free(q);
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*svg = b.p;
	*svg_len = b.len;
	return 0;
}
