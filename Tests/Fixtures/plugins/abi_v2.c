/* Fixture: a plugin built for a future ABI major: it exports only the v2 entry. */
#include "switchyard/switchyard.h"
__attribute__((visibility("default")))
const void *sy_plugin_entry_v2(const void *host) { (void)host; return 0; }
