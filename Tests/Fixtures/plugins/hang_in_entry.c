/* Fixture: a plugin whose entry never returns. */
#include "switchyard/switchyard.h"
#include <unistd.h>
__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) { (void)host; for (;;) pause(); }
