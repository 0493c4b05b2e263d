/*
 * Fuzz target: the YAML config loader. Any input must load or be rejected
 * with diagnostics; never crash, leak or read out of bounds.
 */
#include <stdio.h>

#include <gsl/gsl_errno.h>

#include "bayeswatch/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bw_config_t cfg;
    FILE *devnull = fopen("/dev/null", "w");

    gsl_set_error_handler_off();
    bw_config_load_string(&cfg, "fuzz.yaml", (const char *)data, size, devnull);
    if (devnull != NULL) {
        fclose(devnull);
    }
    return 0;
}
