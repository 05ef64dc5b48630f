#ifndef SWITCHYARD_EXT_BALANCE_H
#define SWITCHYARD_EXT_BALANCE_H

#include "../plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Plugin extension "sy.balance/1": the account balance at the provider. */
#define SY_EXTENSION_BALANCE "sy.balance/1"

typedef struct sy_extension_balance {
    uint32_t struct_size;
    /* [worker thread, concurrent] request {"config"}. Writes
     * {"amount_minor":int,"currency":...,"basis":...} for money, or
     * {"amount_minor":0,"currency","basis","quantity":number,"unit":...} for a
     * balance kept in provider units (Kling resource packs); or {"error":{...}}. */
    sy_status_t (*balance)(const sy_plugin_t *plugin, const sy_call_t *call,
                           sy_str_t request, const sy_sink_t *out);
} sy_extension_balance_t;
enum { SY_EXTENSION_BALANCE_V1_0_SIZE = SY_SIZE_THROUGH(sy_extension_balance_t, balance) };


#ifdef __cplusplus
}
#endif

#endif
