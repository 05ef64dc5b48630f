#ifndef SWITCHYARD_ENTRY_H
#define SWITCHYARD_ENTRY_H

#include "host.h"
#include "plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* SY_EXPORT marks the entry visible from a shared object built with hidden
 * visibility by default (-fvisibility=hidden), on every compiler we support. */
#if defined(_WIN32)
#define SY_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define SY_EXPORT __attribute__((visibility("default")))
#else
#define SY_EXPORT
#endif

/* The one symbol a plugin exports. It is a function, not data, because Swift
 * can export functions with a C name but not data. The ABI major is part of
 * the name: a host looks up exactly "sy_plugin_entry_v<its major>".
 *
 * [loader thread, once] Called by the host right after
 * dlopen(RTLD_NOW | RTLD_LOCAL), before any other call. `host` is valid for
 * the life of the process; the plugin may keep it. Must not block, must not
 * do network or file I/O, and should return within milliseconds.
 * Returns the plugin's descriptor and vtable (owned by the plugin, valid for
 * the life of the process), or NULL when the plugin cannot work with this
 * host (e.g. host->abi.minor is older than the plugin needs).
 *
 * A C plugin defines it as
 *   SY_EXPORT const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { ... }
 * and a Swift plugin with @_cdecl("sy_plugin_entry_v1") (PluginExport). */
#define SY_PLUGIN_ENTRY_SYMBOL "sy_plugin_entry_v1"

SY_EXPORT const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host);

typedef const sy_plugin_t *(*sy_plugin_entry_v1_fn)(const sy_host_t *host);

#ifdef __cplusplus
}
#endif

#endif
