/*
 * CRC-32 (IEEE, reflected polynomial 0xEDB88320; Sarwate's table method,
 * O(n)) for state blobs, and FNV-1a 64 for hash tables and seeds.
 */
#include <threads.h>

#include "bayeswatch/hash.h"

static uint32_t crc_table[256];
static once_flag crc_once = ONCE_FLAG_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }
        crc_table[i] = c;
    }
}

uint32_t bw_crc32(uint32_t crc, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    call_once(&crc_once, crc_init); /* stream threads may race to it */
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

uint64_t bw_hash64(uint64_t h, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
