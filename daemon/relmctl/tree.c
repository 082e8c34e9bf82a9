/*
 * tree.c — `relmctl tree RELATIONSHIP [--dot]`: relationship.show's chain
 * tree drawn as indented text, the chosen leaf marked, or as Graphviz.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relmctl/relmctl.h"

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

int cmd_tree(struct client *cl, int argc, char **argv)
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
