/*
 * qr_text.c — a QR code drawn in a terminal (relmctl.h), through
 * libqrencode.  Each line holds two rows of modules: ' ' both light, '▀'
 * the upper dark, '▄' the lower dark, '█' both dark, so a dark module is
 * ink.  A terminal shows ink in its foreground colour, which on many
 * terminals is light on dark — a negative that some cameras refuse — so on
 * a terminal every line is drawn black on white.  Four modules of light
 * quiet zone surround the code, as the standard asks.
 */
#include <stdio.h>
#include <string.h>

#include <qrencode.h>

#include "relmctl/relmctl.h"

enum { QUIET = 4 };

static int dark(const QRcode *q, int x, int y)
{
	x -= QUIET;
	y -= QUIET;
	if (x < 0 || y < 0 || x >= q->width || y >= q->width)
		return 0;
	return q->data[y * q->width + x] & 1;   /* bit 0: dark (libqrencode) */
}

int qr_text(FILE *f, const char *text, int ansi)
{
	static const char *glyph[4] = { " ", "\u2584", "\u2580", "\u2588" };
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (!q)
		return -1;
	int size = q->width + 2 * QUIET;
	for (int y = 0; y < size; y += 2) {
		if (ansi)
			fputs("\033[30;47m", f);
		for (int x = 0; x < size; x++)
			fputs(glyph[dark(q, x, y) << 1 | dark(q, x, y + 1)], f);
		fputs(ansi ? "\033[0m\n" : "\n", f);
	}
	QRcode_free(q);
	return 0;
}
