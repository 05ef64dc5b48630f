#ifndef YARD_PLUGIN_RUNNER_SANDBOX_H
#define YARD_PLUGIN_RUNNER_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

/* What the runner confines itself to before it loads any plugin code. Every
 * layer is tried; one the kernel refuses is recorded with its reason and the
 * others still apply (see docs/isolation.md). */
typedef struct runner_sandbox_config {
    int enabled;                 /* 0: --no-sandbox (rlimits only), for measurements */
    const char *scratch;         /* the one folder the plugin may write; NULL: none */
    const char *read_only[64];   /* folders and files the plugin may read (libraries) */
    int read_only_count;
    uint64_t memory_bytes;       /* RLIMIT_AS */
    uint64_t cpu_seconds;        /* RLIMIT_CPU (soft; SIGKILL 5 s later) */
    uint64_t file_bytes;         /* RLIMIT_FSIZE */
    uint64_t open_files;         /* RLIMIT_NOFILE */
    uint64_t extra_tasks;        /* RLIMIT_NPROC headroom over the user's current tasks */
} runner_sandbox_config_t;

/* Applies every layer to the calling (still single-threaded) process and
 * writes a JSON report of what is in effect into `report` (NUL-terminated).
 * Returns 0, or -1 when a layer failed half-way so that the process must not
 * go on (the report says which). */
int runner_sandbox_apply(const runner_sandbox_config_t *config, char *report, size_t report_size);

/* After runner_sandbox_apply: tries what a hostile plugin would (open a
 * socket, read a file outside the allowed folders, fork) and appends the
 * outcomes to the JSON object in `report`. For `--probe`. */
void runner_sandbox_self_check(char *report, size_t report_size);

#endif
