/* Baseline for scripts/bench-plugins.sh: dlopen(RTLD_NOW|RTLD_LOCAL) and
 * dlsym the entry of every library named on the command line, the least any
 * loader must do. Prints the total in milliseconds. */
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    struct timespec a, b;
    int i, loaded = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 1; i < argc; i++) {
        void *h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
        if (h && dlsym(h, "sy_plugin_entry_v1")) loaded++;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.3f %d\n", (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6, loaded);
    return loaded == argc - 1 ? 0 : 1;
}
