/* SPDX-License-Identifier: Apache-2.0 */
#include "edist/version.h"

const char *edist_version(void)
{
    return EDIST_VERSION_STRING;
}
