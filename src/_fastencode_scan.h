/*
 * Finding a multipart delimiter in part content, many bytes at a time.
 *
 * poster_find(data, n, pattern, plen) returns the lowest offset i at which
 * data[i] is a line break, CR or LF, and data[i+1 : i+plen] equals
 * pattern[1:plen]; or -1.  The pattern is always LF + delimiter (so plen >= 2),
 * and its first byte stands for either line break: a delimiter after a bare
 * CR is one that werkzeug and the email package split a body at.
 *
 * On x86-64 (SSE2 is part of the base instruction set) 16 candidate offsets
 * are tested per step: an offset survives only when the byte after it equals
 * the pattern's second byte and the byte plen - 1 further its last byte,
 * then only when it is CR or LF, which on binary or text content leaves
 * almost nothing for memcmp.  Where SSE2 is missing, the C library's memchr
 * (itself vectorised in glibc) jumps from line break to line break (one call
 * per CR or LF: text dense in either costs more there).  With GCC or Clang
 * on x86-64, AVX2 and AVX-512 (BW) versions test 128 offsets a step when the
 * CPU has them, filtering the same way; AVX-512 is the faster where both
 * are (64 KiB in cache: 112 against 77 GB/s on an AMD EPYC).  All give the
 * same answer: the lowest matching offset.
 */
#ifndef POSTER_FASTENCODE_SCAN_H
#define POSTER_FASTENCODE_SCAN_H

#include <Python.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define POSTER_SCAN_SSE2 1
#endif

/* With GCC or Clang on x86-64, an AVX2 version and an AVX-512 one (128
 * offsets a step each) are built as well, and the best the CPU has is chosen
 * at run time. */
#if defined(POSTER_SCAN_SSE2) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define POSTER_SCAN_AVX2 1
#define POSTER_SCAN_AVX512 1
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

/* The offset of the first byte c in data[from, to], or to + 1 when there is none. */
static inline Py_ssize_t poster_next_byte(const unsigned char *data, Py_ssize_t from, Py_ssize_t to, int c)
{
    const unsigned char *hit = (const unsigned char *)memchr(data + from, c, (size_t)(to - from + 1));
    return hit == NULL ? to + 1 : (Py_ssize_t)(hit - data);
}

/* From line break to line break with memchr (the next LF and the next CR,
 * each looked for again once passed); used for the last few offsets and
 * without SSE2. */
static Py_ssize_t poster_find_memchr(const unsigned char *data, Py_ssize_t n,
                                     const unsigned char *pattern, Py_ssize_t plen,
                                     Py_ssize_t start)
{
    const Py_ssize_t last_start = n - plen;
    Py_ssize_t lf = -1, cr = -1;  /* below i: to be looked for; last_start + 1: none left */
    Py_ssize_t i = start;
    while (i <= last_start) {
        Py_ssize_t at;
        if (lf < i)
            lf = poster_next_byte(data, i, last_start, '\n');
        if (cr < i)
            cr = poster_next_byte(data, i, last_start, '\r');
        at = lf < cr ? lf : cr;
        if (at > last_start)
            return -1;
        if (memcmp(data + at + 1, pattern + 1, (size_t)(plen - 1)) == 0)
            return at;
        i = at + 1;
    }
    return -1;
}

#ifdef POSTER_SCAN_AVX2
/* The candidates among offsets p..p+31: byte p[k + 1] is pattern[1] and
 * byte p[k + plen - 1] is the pattern's last. */
__attribute__((target("avx2")))
static inline __m256i poster_candidates32(const unsigned char *p, Py_ssize_t plen, __m256i second, __m256i last)
{
    return _mm256_and_si256(
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(p + 1)), second),
        _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(p + plen - 1)), last));
}

/* Which of offsets p..p+31 hold a line break, CR or LF. */
__attribute__((target("avx2")))
static inline __m256i poster_line_breaks32(const unsigned char *p, __m256i lf, __m256i cr)
{
    const __m256i here = _mm256_loadu_si256((const __m256i *)p);
    return _mm256_or_si256(_mm256_cmpeq_epi8(here, lf), _mm256_cmpeq_epi8(here, cr));
}

/* Offsets [0, *done) are searched; the caller finishes from *done.
 *
 * 128 offsets a step, filtered on the pattern's second byte ('-' for a
 * multipart delimiter) and its last, a pair binary and text content seldom
 * hold at that distance: one test per step says there is no candidate.
 * A step that has candidates tests them for the line break (CR or LF) as
 * well, before any is checked alone: content where the pair is common
 * (dashes, with a boundary that ends in '-'; dates, with one that ends in a
 * digit) costs a few tests more a step, not a check of every offset.  (The
 * line break tested on every step would cost 15-30 %.)  Needs plen >= 2. */
__attribute__((target("avx2")))
static Py_ssize_t poster_find_avx2(const unsigned char *data, Py_ssize_t n,
                                   const unsigned char *pattern, Py_ssize_t plen,
                                   Py_ssize_t *done)
{
    const __m256i second = _mm256_set1_epi8((char)pattern[1]);
    const __m256i last = _mm256_set1_epi8((char)pattern[plen - 1]);
    const __m256i lf = _mm256_set1_epi8('\n');
    const __m256i cr = _mm256_set1_epi8('\r');
    Py_ssize_t i = 0;
    /* Offsets i..i+127 are tested when bytes up to i + 127 + plen - 1
     * exist: the last load of each kind ends there or before it. */
    for (; i + 127 + plen <= n; i += 128) {
        const unsigned char *p = data + i;
        __m256i c0 = poster_candidates32(p, plen, second, last);
        __m256i c1 = poster_candidates32(p + 32, plen, second, last);
        __m256i c2 = poster_candidates32(p + 64, plen, second, last);
        __m256i c3 = poster_candidates32(p + 96, plen, second, last);
        __m256i any = _mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3));
        int half;
        if (_mm256_testz_si256(any, any))
            continue;
        c0 = _mm256_and_si256(c0, poster_line_breaks32(p, lf, cr));
        c1 = _mm256_and_si256(c1, poster_line_breaks32(p + 32, lf, cr));
        c2 = _mm256_and_si256(c2, poster_line_breaks32(p + 64, lf, cr));
        c3 = _mm256_and_si256(c3, poster_line_breaks32(p + 96, lf, cr));
        any = _mm256_or_si256(_mm256_or_si256(c0, c1), _mm256_or_si256(c2, c3));
        if (_mm256_testz_si256(any, any))
            continue;
        for (half = 0; half < 2; half++) {
            __m256i low = half ? c2 : c0;
            __m256i high = half ? c3 : c1;
            unsigned long long mask = (unsigned int)_mm256_movemask_epi8(low)
                | ((unsigned long long)(unsigned int)_mm256_movemask_epi8(high) << 32);
            while (mask) {
                Py_ssize_t offset = 64 * half + __builtin_ctzll(mask);
                const unsigned char *at = p + offset;
                if (memcmp(at + 2, pattern + 2, (size_t)(plen - 2)) == 0) {
                    *done = i;
                    return i + offset;
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

#ifdef POSTER_SCAN_AVX512
/* As poster_find_avx2, 64 offsets a vector: the pattern's second and last
 * bytes give a mask of candidates (one compare each, the second only where
 * the first matched), and a step with candidates keeps those after a CR or
 * a LF.  Offsets [0, *done) are searched.  Needs plen >= 2. */
__attribute__((target("avx512f,avx512bw")))
static Py_ssize_t poster_find_avx512(const unsigned char *data, Py_ssize_t n,
                                     const unsigned char *pattern, Py_ssize_t plen,
                                     Py_ssize_t *done)
{
    const __m512i second = _mm512_set1_epi8((char)pattern[1]);
    const __m512i last = _mm512_set1_epi8((char)pattern[plen - 1]);
    const __m512i lf = _mm512_set1_epi8('\n');
    const __m512i cr = _mm512_set1_epi8('\r');
    Py_ssize_t i = 0;
    /* Offsets i..i+127, as in poster_find_avx2. */
    for (; i + 127 + plen <= n; i += 128) {
        const unsigned char *p = data + i;
        __mmask64 c0 = _mm512_mask_cmpeq_epi8_mask(
            _mm512_cmpeq_epi8_mask(_mm512_loadu_si512((const void *)(p + 1)), second),
            _mm512_loadu_si512((const void *)(p + plen - 1)), last);
        __mmask64 c1 = _mm512_mask_cmpeq_epi8_mask(
            _mm512_cmpeq_epi8_mask(_mm512_loadu_si512((const void *)(p + 65)), second),
            _mm512_loadu_si512((const void *)(p + 64 + plen - 1)), last);
        int half;
        if ((c0 | c1) == 0)
            continue;
        for (half = 0; half < 2; half++) {
            const unsigned char *q = p + 64 * half;
            const __m512i here = _mm512_loadu_si512((const void *)q);
            unsigned long long mask = (unsigned long long)(half ? c1 : c0);
            if (!mask)
                continue;
            mask &= (unsigned long long)(_mm512_cmpeq_epi8_mask(here, lf) | _mm512_cmpeq_epi8_mask(here, cr));
            while (mask) {
                Py_ssize_t offset = 64 * half + __builtin_ctzll(mask);
                if (memcmp(p + offset + 2, pattern + 2, (size_t)(plen - 2)) == 0) {
                    *done = i;
                    return i + offset;
                }
                mask &= mask - 1;
            }
        }
    }
    *done = i;
    return -1;
}

static int poster_have_avx512 = 0;
#endif

/* Chooses the scan for this CPU; called once, when the module is imported. */
static void poster_scan_init(void)
{
#ifdef POSTER_SCAN_AVX2
    __builtin_cpu_init();
    poster_have_avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
#endif
#ifdef POSTER_SCAN_AVX512
    poster_have_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") ? 1 : 0;
#endif
}

static Py_ssize_t poster_find(const unsigned char *data, Py_ssize_t n,
                              const unsigned char *pattern, Py_ssize_t plen)
{
    Py_ssize_t i = 0;
    if (plen < 1 || n < plen)
        return -1;
#ifdef POSTER_SCAN_AVX512
    if (poster_have_avx512 && plen >= 2) {
        Py_ssize_t found = poster_find_avx512(data, n, pattern, plen, &i);
        if (found >= 0)
            return found;
    } else
#endif
#ifdef POSTER_SCAN_AVX2
    if (poster_have_avx2 && plen >= 2) {
        Py_ssize_t found = poster_find_avx2(data, n, pattern, plen, &i);
        if (found >= 0)
            return found;
    }
#endif
#ifdef POSTER_SCAN_SSE2
    {
        const __m128i second = _mm_set1_epi8((char)pattern[1]);
        const __m128i last = _mm_set1_epi8((char)pattern[plen - 1]);
        const __m128i lf = _mm_set1_epi8('\n');
        const __m128i cr = _mm_set1_epi8('\r');
        /* Offsets i..i+15 are tested when bytes up to i + 15 + plen - 1
         * exist, that is while i + 15 + plen <= n.  As with AVX2: the
         * pattern's second and last bytes first, the line break only for
         * a step that has candidates. */
        for (; i + 15 + plen <= n; i += 16) {
            __m128i next = _mm_loadu_si128((const __m128i *)(data + i + 1));
            __m128i tail = _mm_loadu_si128((const __m128i *)(data + i + plen - 1));
            unsigned int mask = (unsigned int)_mm_movemask_epi8(
                _mm_and_si128(_mm_cmpeq_epi8(next, second), _mm_cmpeq_epi8(tail, last)));
            if (mask) {
                __m128i head = _mm_loadu_si128((const __m128i *)(data + i));
                mask &= (unsigned int)_mm_movemask_epi8(
                    _mm_or_si128(_mm_cmpeq_epi8(head, lf), _mm_cmpeq_epi8(head, cr)));
            }
            while (mask) {
                int bit = poster_lowest_bit(mask);
                /* A line break, then the second and last bytes; compare the rest. */
                if (plen <= 3 || memcmp(data + i + bit + 2, pattern + 2, (size_t)(plen - 3)) == 0)
                    return i + bit;
                mask &= mask - 1;
            }
        }
    }
#endif
    return poster_find_memchr(data, n, pattern, plen, i);
}

#endif /* POSTER_FASTENCODE_SCAN_H */
