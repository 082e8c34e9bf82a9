/*
 * qr.h — a QR code as SVG, drawn by relm-web with libqrencode, so the page
 * needs no QR library of its own (proto/web.md §5, POST /qr).
 *
 * The text is encoded as 8-bit data at error-correction level M (level L
 * when M cannot hold it); dark modules are one SVG path, merged into
 * horizontal runs, inside the four-module quiet zone the standard asks
 * for.  The image is black on white whatever the page's colours: scanners
 * need the contrast.
 */
#ifndef RELM_WEB_QR_H
#define RELM_WEB_QR_H

#include <stddef.h>

/* text (len bytes, 1..WEB_QR_TEXT_MAX) as an SVG document, malloc'd into
 * *svg / *svg_len.  0, -EINVAL (empty or too long for a QR code), or
 * -ENOMEM. */
int qr_svg(const char *text, size_t len, char **svg, size_t *svg_len);

#endif
