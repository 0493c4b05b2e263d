/*
 * Fuzz targets: libFuzzer entry points (clang -fsanitize=fuzzer), and a
 * plain main (replay_main.c) that runs a corpus through the same entry
 * point under gcc in ctest (after librdkafka's tests/fuzzers/).
 */
#ifndef BW_FUZZ_H
#define BW_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
