/* SPDX-License-Identifier: MIT */
/*
 * What main.c and callbacks.c share: the engine the callbacks decide
 * with, and the filter description handed to smfi_register.
 */
#ifndef RG_MILTER_H
#define RG_MILTER_H

#include <libmilter/mfapi.h>

#include "policy.h"

/* Set by main before smfi_main; read-only afterwards. */
extern struct rg_engine *rg_milter_engine;

/* The filter description (callbacks, flags) for smfi_register. */
struct smfiDesc *rg_milter_desc(void);

#endif
