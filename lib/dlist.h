/* SPDX-License-Identifier: MIT */
/*
 * An intrusive doubly-linked list: the cache's LRU order, the pool's idle
 * connections and the harvest limiter's counter and block lists. A
 * struct rg_dlink sits inside the element; RG_DLIST_ENTRY gets the
 * element back from its link.
 *
 * Locking: none; the owner of the list (a cache or harvest shard, a pool) holds
 * its lock around every call.
 */
#ifndef RG_DLIST_H
#define RG_DLIST_H

#include <stddef.h>

struct rg_dlink {
	struct rg_dlink	*prev, *next;
};

struct rg_dlist {
	struct rg_dlink	*head, *tail;
};

/* The element of type T whose member M is link l, or NULL for NULL. */
#define RG_DLIST_ENTRY(l, T, M) \
	((l) != NULL ? (T *)(void *)((char *)(l) - offsetof(T, M)) : (T *)NULL)

/* Take l out of list (it must be on it). */
static inline void
rg_dlist_remove(struct rg_dlist *list, struct rg_dlink *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		list->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		list->tail = l->prev;
	l->prev = l->next = NULL;
}

/* Put l first. */
static inline void
rg_dlist_push_head(struct rg_dlist *list, struct rg_dlink *l)
{
	l->prev = NULL;
	l->next = list->head;
	if (list->head != NULL)
		list->head->prev = l;
	else
		list->tail = l;
	list->head = l;
}

/* Put l last. */
static inline void
rg_dlist_push_tail(struct rg_dlist *list, struct rg_dlink *l)
{
	l->next = NULL;
	l->prev = list->tail;
	if (list->tail != NULL)
		list->tail->next = l;
	else
		list->head = l;
	list->tail = l;
}

#endif
