/* effects.c — the effect list of an engine step (see effects.h). */
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "engine/effects.h"

void relm_effects_init(struct relm_effects *fx)
{
	memset(fx, 0, sizeof *fx);
}

static void fx_wipe(struct relm_fx *f)
{
	if (f->data) {
		sodium_memzero(f->data, f->len);
		free(f->data);
	}
	memset(f, 0, sizeof *f);
}

void relm__fx_truncate(struct relm_effects *fx, size_t mark)
{
	while (fx->n > mark)
		fx_wipe(&fx->v[--fx->n]);
}

void relm_effects_reset(struct relm_effects *fx)
{
	relm__fx_truncate(fx, 0);
}

void relm_effects_clear(struct relm_effects *fx)
{
	if (!fx)
		return;
	relm_effects_reset(fx);
	free(fx->v);
	memset(fx, 0, sizeof *fx);
}

struct relm_fx *relm__fx_push(struct relm_effects *fx, enum relm_fx_type type)
{
	struct relm_fx *f;

	if (fx->n == fx->cap) {
		size_t cap = fx->cap ? 2 * fx->cap : 16;
		struct relm_fx *v = realloc(fx->v, cap * sizeof *v);
		if (!v)
			return NULL;
		fx->v = v;
		fx->cap = cap;
	}
	f = &fx->v[fx->n++];
	memset(f, 0, sizeof *f);
	f->type = type;
	return f;
}
