#ifndef SWITCHYARD_ENTRY_H
#define SWITCHYARD_ENTRY_H

#include "host.h"
#include "plugin.h"

/* The one symbol a plugin exports. It is a function, not data, because Swift
 * can export functions with a C name but not data. The ABI major is part of
 * the name: a host looks up exactly "sy_plugin_entry_v<its major>".
 *
 *   const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host);
 *
 * [main or loader thread, once per process] Called by the host right after
 * dlopen(RTLD_NOW | RTLD_LOCAL), before any other call. `host` is valid for
 * the life of the process; the plugin may keep it. Must not block, must not
 * do network or file I/O, and should return within milliseconds.
 * Returns the plugin's descriptor and vtable (owned by the plugin, valid for
 * the life of the process), or NULL when the plugin cannot work with this
 * host (e.g. host->abi.minor is older than the plugin needs). */
#define SY_PLUGIN_ENTRY_SYMBOL "sy_plugin_entry_v1"

typedef const sy_plugin_t *(*sy_plugin_entry_v1_fn)(const sy_host_t *host);

#endif
