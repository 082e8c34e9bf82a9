/* error.c — relm_strerror()/relm_errname() from the table in error.h. */
#include <string.h>
#include <stdio.h>
#include "error.h"

const char *relm_strerror(int err)
{
	if (err == 0)
		return "success";
	switch (err) {
#define X(name, val, str, msg) case RELM_##name: return msg;
	RELM_ERRORS(X)
#undef X
	}
	if (err < 0 && err > -1000)
		return strerror(-err);
	return "unknown error";
}

const char *relm_errname(int err)
{
	if (err == 0)
		return "ok";
	switch (err) {
#define X(name, val, str, msg) case RELM_##name: return str;
	RELM_ERRORS(X)
#undef X
	}
	if (err < 0 && err > -1000) {
		/* -errno: a fixed set of names is enough for clients. */
		static const struct { int e; const char *n; } tab[] = {
			{ 2, "errno_enoent" }, { 13, "errno_eacces" }, { 28, "errno_enospc" },
			{ 30, "errno_erofs" }, { 17, "errno_eexist" }, { 5, "errno_eio" },
			{ 1, "errno_eperm" }, { 12, "errno_enomem" }, { 22, "errno_einval" },
		};
		for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
			if (tab[i].e == -err)
				return tab[i].n;
		return "system";
	}
	return "unknown";
}

int relm_errcode(const char *name)
{
#define X(n, val, str, msg) if (name && strcmp(name, str) == 0) return RELM_##n;
	RELM_ERRORS(X)
#undef X
	return 0;
}
