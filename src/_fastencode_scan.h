/*
 * Finding a multipart delimiter in part content, many bytes at a time.
 *
 * poster_find(data, n, pattern, plen) returns the offset of the first
 * occurrence of pattern[0:plen] in data[0:n], or -1.  The pattern is always
 * LF + delimiter, so pattern[0] is '\n' and plen >= 2.
 *
 * On x86-64 (SSE2 is part of the base instruction set) 16 candidate offsets
 * are tested per step: an offset survives only when its byte equals the
 * pattern's first byte and the byte plen - 1 further equals its last byte,
 * which on binary or text content leaves almost nothing for memcmp.  Where
 * SSE2 is missing, the C library's memchr (itself vectorised in glibc) jumps
 * from LF to LF.  With GCC or Clang on x86-64 an AVX2 version tests 64
 * offsets a step when the CPU has AVX2.  All give the same answer: the
 * lowest matching offset.
 */
#ifndef POSTER_FASTENCODE_SCAN_H
#define POSTER_FASTENCODE_SCAN_H

#include <Python.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define POSTER_SCAN_SSE2 1
#endif

/* With GCC or Clang on x86-64, an AVX2 version (64 offsets a step) is built
 * as well and chosen at run time when the CPU has AVX2. */
#if defined(POSTER_SCAN_SSE2) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define POSTER_SCAN_AVX2 1
#endif

/* Lowest set bit of a non-zero mask. */
static inline int poster_lowest_bit(unsigned int mask)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(mask);
#else
    int bit = 0;
    while (!(mask & 1u)) {
        mask >>= 1;
        bit++;
    }
    return bit;
#endif
}

/* From LF to LF with memchr; used for the last few offsets and without SSE2. */
static Py_ssize_t poster_find_memchr(const unsigned char *data, Py_ssize_t n,
                                     const unsigned char *pattern, Py_ssize_t plen,
                                     Py_ssize_t start)
{
    const Py_ssize_t last_start = n - plen;
    Py_ssize_t i = start;
    while (i <= last_start) {
        const unsigned char *hit = (const unsigned char *)memchr(
            data + i, pattern[0], (size_t)(last_start - i + 1));
        if (hit == NULL)
            return -1;
        i = (Py_ssize_t)(hit - data);
        if (memcmp(hit + 1, pattern + 1, (size_t)(plen - 1)) == 0)
            return i;
        i++;
    }
    return -1;
}

#ifdef POSTER_SCAN_AVX2
/* Offsets [0, *done) are searched; the caller finishes from *done. */
__attribute__((target("avx2")))
static Py_ssize_t poster_find_avx2(const unsigned char *data, Py_ssize_t n,
                                   const unsigned char *pattern, Py_ssize_t plen,
                                   Py_ssize_t *done)
{
    const __m256i first = _mm256_set1_epi8((char)pattern[0]);
    const __m256i last = _mm256_set1_epi8((char)pattern[plen - 1]);
    Py_ssize_t i = 0;
    /* Offsets i..i+63 are tested when bytes up to i + 63 + plen - 1 exist. */
    for (; i + 63 + plen <= n; i += 64) {
        const unsigned char *p = data + i;
        __m256i h0 = _mm256_loadu_si256((const __m256i *)p);
        __m256i h1 = _mm256_loadu_si256((const __m256i *)(p + 32));
        __m256i t0 = _mm256_loadu_si256((const __m256i *)(p + plen - 1));
        __m256i t1 = _mm256_loadu_si256((const __m256i *)(p + plen - 1 + 32));
        __m256i m0 = _mm256_and_si256(_mm256_cmpeq_epi8(h0, first), _mm256_cmpeq_epi8(t0, last));
        __m256i m1 = _mm256_and_si256(_mm256_cmpeq_epi8(h1, first), _mm256_cmpeq_epi8(t1, last));
        if (_mm256_testz_si256(_mm256_or_si256(m0, m1), _mm256_or_si256(m0, m1)))
            continue;
        {
            unsigned long long mask = (unsigned int)_mm256_movemask_epi8(m0)
                | ((unsigned long long)(unsigned int)_mm256_movemask_epi8(m1) << 32);
            while (mask) {
                int bit = __builtin_ctzll(mask);
                if (plen <= 2 || memcmp(p + bit + 1, pattern + 1, (size_t)(plen - 2)) == 0) {
                    *done = i;
                    return i + bit;
                }
                mask &= mask - 1;
            }
        }
    }
    *done = i;
    return -1;
}

static int poster_have_avx2 = 0;
#endif

/* Chooses the scan for this CPU; called once, when the module is imported. */
static void poster_scan_init(void)
{
#ifdef POSTER_SCAN_AVX2
    __builtin_cpu_init();
    poster_have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
}

static Py_ssize_t poster_find(const unsigned char *data, Py_ssize_t n,
                              const unsigned char *pattern, Py_ssize_t plen)
{
    Py_ssize_t i = 0;
    if (plen < 1 || n < plen)
        return -1;
#ifdef POSTER_SCAN_AVX2
    if (poster_have_avx2) {
        Py_ssize_t found = poster_find_avx2(data, n, pattern, plen, &i);
        if (found >= 0)
            return found;
    }
#endif
#ifdef POSTER_SCAN_SSE2
    {
        const __m128i first = _mm_set1_epi8((char)pattern[0]);
        const __m128i last = _mm_set1_epi8((char)pattern[plen - 1]);
        /* Offsets i..i+15 are tested when bytes up to i + 15 + plen - 1
         * exist, that is while i + 15 + plen <= n. */
        for (; i + 15 + plen <= n; i += 16) {
            __m128i head = _mm_loadu_si128((const __m128i *)(data + i));
            __m128i tail = _mm_loadu_si128((const __m128i *)(data + i + plen - 1));
            unsigned int mask = (unsigned int)_mm_movemask_epi8(
                _mm_and_si128(_mm_cmpeq_epi8(head, first), _mm_cmpeq_epi8(tail, last)));
            while (mask) {
                int bit = poster_lowest_bit(mask);
                /* First and last bytes already match; compare the middle. */
                if (plen <= 2 || memcmp(data + i + bit + 1, pattern + 1, (size_t)(plen - 2)) == 0)
                    return i + bit;
                mask &= mask - 1;
            }
        }
    }
#endif
    return poster_find_memchr(data, n, pattern, plen, i);
}

#endif /* POSTER_FASTENCODE_SCAN_H */
