/* util_trio.c — see util_trio.h. */
#include <string.h>
#include <check.h>
#include "util_trio.h"
#include "util_rand.h"

void tu_trio_flow(struct tu_trio *t)
{
	int moved = 1;

	while (moved) {
		moved = 0;
		for (size_t i = 0; i < t->nA; i++) {
			while (t->A[i]->nout) {
				struct tu_blob e = tu_take(t->A[i], 0);
				tu_recv(t->r, e.buf, e.len);
				tu_blob_free(&e);
				moved = 1;
			}
			if (t->A[i]->ncopy && !t->late_copies) {
				tu_copies_to(t->A[i], t->A, t->nA);
				moved = 1;
			}
		}
		while (t->r->nout) {
			struct tu_blob e = tu_take(t->r, 0);
			for (size_t i = 0; i < 3; i++)
				if (t->A[i]->rel && (t->reach & (1u << i)))
					tu_recv(t->A[i], e.buf, e.len);
			tu_blob_free(&e);
			moved = 1;
		}
		for (size_t i = t->nA; i < 3; i++)
			while (t->A[i]->rel && (t->A[i]->nout || t->A[i]->ncopy)) {
				struct tu_blob e = t->A[i]->nout ? tu_take(t->A[i], 0) : tu_take_copy(t->A[i]);
				tu_blob_free(&e);
			}
	}
}

void tu_trio_tick(struct tu_trio *t, uint64_t ms)
{
	*t->clock += ms;
	for (size_t i = 0; i < 3; i++)
		if (t->A[i]->rel)
			tu_tick(t->A[i]);
	tu_tick(t->r);
	tu_trio_flow(t);
}

void tu_trio_chat(struct tu_trio *t, int rounds)
{
	for (int k = 0; k < rounds; k++) {
		tu_send(t->A[(size_t)k % t->nA], "from A", NULL);
		tu_trio_flow(t);
		tu_send(t->r, "from r", NULL);
		tu_trio_flow(t);
		tu_trio_tick(t, 3000);
	}
}

static int healed(const struct tu_trio *t)
{
	for (size_t i = 0; i < t->nA; i++)
		if (t->A[i]->rel->heal_state != RELM_HEAL_NONE)
			return 0;
	return 1;
}

int tu_trio_heal(struct tu_trio *t, int *rounds)
{
	*rounds = 0;
	while (!healed(t) && (*rounds)++ < 8) {
		tu_trio_tick(t, 21000);
		tu_send(t->r, "reply", NULL);
		tu_trio_flow(t);
		tu_trio_tick(t, 3000);
	}
	return healed(t);
}

void tu_trio_init(struct tu_trio *t, struct tu_party *a[3], struct tu_party *r, uint64_t *clock,
                  enum relm_mode remote_mode, uint64_t stream)
{
	memset(t, 0, sizeof *t);
	memset(a[1], 0, sizeof *a[1]);
	memset(a[2], 0, sizeof *a[2]);
	for (size_t i = 0; i < 3; i++)
		t->A[i] = a[i];
	t->r = r;
	t->clock = clock;
	t->reach = 7;
	tu_party_init(a[0], clock, stream);
	tu_party_init(r, clock, stream + 1);
	tu_pair(a[0], r, RELM_MODE_TREE, remote_mode, 1);
	t->nA = 1;
	for (int i = 0; i < 4; i++)
		tu_trio_tick(t, 3000);
	tu_clone(a[1], a[0], clock, stream + 2);
	tu_clone(a[2], a[0], clock, stream + 3);
	tu_devices(t->A, 3);
	t->nA = 3;
	for (size_t i = 0; i < 3; i++) {
		a[i]->env.params.heal_min_ms = 1000;
		a[i]->env.params.heal_max_ms = 20000;
		a[i]->env.params.clone_window_ms = 60000;
	}
}

void tu_trio_free(struct tu_trio *t)
{
	for (size_t i = 0; i < 3; i++)
		if (t->A[i]->rel)
			tu_party_free(t->A[i]);
	tu_party_free(t->r);
}
