/* One entry point per parser. Built with clang -fsanitize=fuzzer (make fuzz)
 * each file is a libFuzzer target; built with -DFUZZ_SMOKE they become plain
 * functions that tests/fuzz/smoke_driver.c runs under `make check`. */
#ifndef WSB_FUZZ_H
#define WSB_FUZZ_H
#include <stddef.h>
#include <stdint.h>
#ifdef FUZZ_SMOKE
#define FUZZ_ENTRY(name) int name(const uint8_t *data, size_t size)
#else
#define FUZZ_ENTRY(name) int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
#endif
int fuzz_http_parse(const uint8_t *data, size_t size);
int fuzz_ws_frame(const uint8_t *data, size_t size);
int fuzz_stomp_codec(const uint8_t *data, size_t size);
int fuzz_mqtt_codec(const uint8_t *data, size_t size);
int fuzz_acl(const uint8_t *data, size_t size);
#endif
