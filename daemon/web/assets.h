/*
 * assets.h — the page's files, compiled into relm-web by embed.sh from
 * daemon/web/assets/ (the Makefile regenerates them when a file changes).
 */
#ifndef RELM_WEB_ASSETS_H
#define RELM_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *path;               /* "/", "/app.js", ... */
	const char *type;               /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const unsigned web_asset_count;

#endif
