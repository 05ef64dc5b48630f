/* Fixture: a plugin whose entry crashes (writes through a NULL pointer). */
#include "switchyard/switchyard.h"
__attribute__((visibility("default")))
const sy_plugin_t *sy_plugin_entry_v1(const sy_host_t *host) {
    volatile int *nowhere = 0;
    (void)host;
    *nowhere = 1;
    return 0;
}
