#ifndef SWITCHYARD_TEXT_H
#define SWITCHYARD_TEXT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A UTF-8 string with an explicit length. `data` need not be NUL-terminated.
 * An empty string is { NULL, 0 } or { p, 0 }.
 * Ownership: always borrowed. The receiver copies what it wants to keep; the
 * pointer is valid only for the duration of the call it was passed to (or,
 * for fields of long-lived structs such as sy_plugin_t.descriptor, for the
 * life of the process). */
typedef struct sy_str {
    const char *data;
    size_t size;
} sy_str_t;

/* An output channel. Whoever produces a result writes it through a sink that
 * the receiver owns, so no memory is ever freed across the boundary.
 *
 * The receiver creates the sink and keeps it valid for the duration of one
 * call. The producer calls write() zero or more times, on the thread of that
 * call, before the call returns; chunks are appended in order. The receiver
 * copies the bytes; the producer may reuse its buffer once write() returns.
 * A sink is never NULL where a function documents that it receives one. */
typedef struct sy_sink {
    uint32_t struct_size;
    /* Receiver's private data. The producer must not touch it. */
    void *context;
    /* [call thread] Append `size` bytes. `data` may be NULL only if size == 0. */
    void (*write)(const struct sy_sink *sink, const char *data, size_t size);
} sy_sink_t;
enum { SY_SINK_V1_0_SIZE = SY_SIZE_THROUGH(sy_sink_t, write) };


#ifdef __cplusplus
}
#endif

#endif
