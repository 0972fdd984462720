/* pcfree: the guest side of `pagecore qemu freereport` (pagecore/qemu/freereport.py).
 *
 *   pcfree alloc MB HOLD_S NAME   allocate MB MiB of anonymous memory, write every page (a non-zero
 *                                 pattern), print the guest frames it got ("PCFREE-U NAME <first pfn
 *                                 hex> <pages hex>" runs, from /proc/self/pagemap), print "PCFREE NAME
 *                                 touched", hold HOLD_S seconds, print "PCFREE NAME freeing" and exit
 *                                 (the kernel frees it all).
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

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The guest frames backing [p, p + len) as sorted runs (root sees PFNs in /proc/self/pagemap). */
static void print_frames(unsigned char *p, size_t len, const char *name) {
    size_t n = len / 4096, k = 0;
    uint64_t *pm = malloc(n * 8), *pfn = malloc(n * 8);
    int fd = open("/proc/self/pagemap", O_RDONLY);
    if (!pm || !pfn || fd < 0 || pread(fd, pm, n * 8, (off_t)((uintptr_t)p / 4096 * 8)) != (ssize_t)(n * 8)) {
        printf("PCFREE-WARN %s: /proc/self/pagemap unreadable\n", name);
        return;
    }
    close(fd);
    for (size_t i = 0; i < n; i++)
        if (pm[i] >> 63)
            pfn[k++] = pm[i] & ((1ULL << 55) - 1);
    qsort(pfn, k, 8, cmp_u64);
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && pfn[j] == pfn[j - 1] + 1)
            j++;
        printf("PCFREE-U %s %llx %zx\n", name, (unsigned long long)pfn[i], j - i);
        i = j;
    }
    free(pm);
    free(pfn);
}

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
    print_frames(p, len, name);
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
