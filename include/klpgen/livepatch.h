/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * klpgen/livepatch.h: what a fix may say about the livepatch that carries it.
 *
 * A fix includes this header (klpgen adds its directory to the include path) and
 * declares, in the .c whose functions it changes:
 *
 *   KLPGEN_PRE_PATCH_CALLBACK(fn);    int fn(struct klp_object *obj): may refuse the patch
 *   KLPGEN_POST_PATCH_CALLBACK(fn);   void fn(struct klp_object *obj)
 *   KLPGEN_PRE_UNPATCH_CALLBACK(fn);  void fn(struct klp_object *obj)
 *   KLPGEN_POST_UNPATCH_CALLBACK(fn); void fn(struct klp_object *obj)
 *
 * The callbacks go into the klp_object of that file's object (vmlinux or its
 * module), so a module's run when the module is loaded, as the kernel does.
 *
 *   KLPGEN_STATE(id, version);        a klp_state of the klp_patch
 *
 * declares a system state the patch owns (a shadow variable id, a changed
 * setting): a later cumulative patch that declares the same id takes it over
 * (klp_get_prev_state() in its callbacks), one with a lower version cannot
 * replace this one. KLPGEN_GET_STATE(id) is this patch's klp_state.
 *
 * Shadow variables are the kernel's klp_shadow_*() (<linux/livepatch.h>).
 *
 * None of these change the running kernel's code: klpgen reads them from the
 * patched object (section .discard.klpgen, which no kernel build keeps) and
 * writes the klp_* structures of the module.
 */
#ifndef _KLPGEN_LIVEPATCH_H
#define _KLPGEN_LIVEPATCH_H

#include <linux/compiler.h>
#include <linux/livepatch.h>

typedef int (*klpgen_pre_patch_t)(struct klp_object *obj);
typedef void (*klpgen_callback_t)(struct klp_object *obj);

#define __KLPGEN_SECTION __used __section(".discard.klpgen")

#define KLPGEN_PRE_PATCH_CALLBACK(fn) \
	static const klpgen_pre_patch_t __klpgen_pre_patch_callback __KLPGEN_SECTION = (fn)
#define KLPGEN_POST_PATCH_CALLBACK(fn) \
	static const klpgen_callback_t __klpgen_post_patch_callback __KLPGEN_SECTION = (fn)
#define KLPGEN_PRE_UNPATCH_CALLBACK(fn) \
	static const klpgen_callback_t __klpgen_pre_unpatch_callback __KLPGEN_SECTION = (fn)
#define KLPGEN_POST_UNPATCH_CALLBACK(fn) \
	static const klpgen_callback_t __klpgen_post_unpatch_callback __KLPGEN_SECTION = (fn)

struct klpgen_state {
	unsigned long id;
	unsigned long version;
};

#define KLPGEN_STATE(id, version) \
	static const struct klpgen_state __klpgen_state_##id __KLPGEN_SECTION = { (id), (version) }

/* The module's klp_patch (klpgen writes it). */
extern struct klp_patch klpgen_patch;

#define KLPGEN_GET_STATE(id) klp_get_state(&klpgen_patch, (id))

#endif /* _KLPGEN_LIVEPATCH_H */
