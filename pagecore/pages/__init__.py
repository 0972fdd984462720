"""Per-page kernels and page tables: hashing, zero and same-filled tests, compressed sizes."""
