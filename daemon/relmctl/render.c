/*
 * render.c — relmctl's output: a result as indented text (objects as
 * "key: value" lines, arrays as "- " items), or with --json the raw result
 * or error object as one line; errors go to stderr with their code.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relmctl/relmctl.h"

void print_scalar(const cJSON *v)
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
int report(const char *method, const cJSON *reply)
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
