/* pcfree: the guest side of `pagecore qemu freereport` (pagecore/qemu/freereport.py).
 *
 *   pcfree alloc MB HOLD_S NAME   allocate MB MiB of anonymous memory, write every page (a non-zero
 *                                 pattern), print "PCFREE NAME touched", hold HOLD_S seconds, print
 *                                 "PCFREE NAME freeing" and exit (the kernel frees it all).
 *   pcfree freelist               read /proc/kpageflags and print the pages the buddy allocator holds
 *                                 free as runs "PCFREE-F <first pfn hex> <pages hex>", then
 *                                 "PCFREE-PFNS <frames read hex>".
 *
 * fs/proc/page.c (stable_page_flags) sets KPF_BUDDY (bit 10) on the head of a free buddy block and,
 * through is_free_buddy_page(), on every other page of it too (so in 6.1, Debian 12), so the set of
 * KPF_BUDDY pages is the guest's free memory. Pages on per-CPU free lists are not in the buddy
 * lists and not counted (nor does the kernel report them). The host checks the total against the
 * "pages free" lines of /proc/zoneinfo.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define KPF_BUDDY (1ULL << 10)

static int do_alloc(long mb, int hold, const char *name) {
    size_t len = (size_t)mb << 20;
    unsigned char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        printf("PCFREE %s mmap-failed\n", name);
        return 1;
    }
    for (size_t i = 0; i < len; i += 4096) {
        uint64_t *w = (uint64_t *)(p + i);
        w[0] = 0x7063667265650000ULL ^ i; /* distinct non-zero page contents */
        w[1] = i * 0x9E3779B97F4A7C15ULL + 1;
    }
    printf("PCFREE %s touched\n", name);
    fflush(stdout);
    sleep(hold);
    printf("PCFREE %s freeing\n", name);
    fflush(stdout);
    munmap(p, len);
    return 0;
}

static int do_freelist(void) {
    int fd = open("/proc/kpageflags", O_RDONLY);
    if (fd < 0) {
        printf("PCFREE-ERROR cannot open /proc/kpageflags\n");
        return 1;
    }
    /* proc files report size 0: read until EOF into a growing buffer */
    size_t cap = 1 << 20, got = 0;
    uint64_t *f = malloc(cap);
    if (!f)
        return 1;
    for (;;) {
        if (got == cap) {
            cap *= 2;
            f = realloc(f, cap);
            if (!f)
                return 1;
        }
        ssize_t r = pread(fd, (char *)f + got, cap - got, (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    size_t n = got / 8;
    unsigned char *free_ = calloc(n ? n : 1, 1);
    if (!free_)
        return 1;
    for (size_t p = 0; p < n; p++)
        free_[p] = (f[p] & KPF_BUDDY) != 0;
    for (size_t p = 0; p < n;) {
        if (!free_[p]) {
            p++;
            continue;
        }
        size_t q = p;
        while (q < n && free_[q])
            q++;
        printf("PCFREE-F %zx %zx\n", p, q - p);
        p = q;
    }
    printf("PCFREE-PFNS %zx\n", n);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "alloc"))
        return do_alloc(atol(argv[2]), atoi(argv[3]), argv[4]);
    if (argc == 2 && !strcmp(argv[1], "freelist"))
        return do_freelist();
    fprintf(stderr, "usage: pcfree alloc MB HOLD_S NAME | pcfree freelist\n");
    return 2;
}
