/* SPDX-License-Identifier: Apache-2.0 */
/* Everything public in edist. */
#ifndef EDIST_EDIST_H
#define EDIST_EDIST_H

#include "edist/version.h"
#include "edist/error.h"
#include "edist/log.h"
#include "edist/term.h"
#include "edist/proc.h"
#include "edist/node.h"
#include "edist/rpc.h"
#include "edist/pg.h"
#include "edist/global.h"

#endif
