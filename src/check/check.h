// SPDX-License-Identifier: Apache-2.0
// check: verification of block contents. Keyed overflow canaries in slack
// and redzones, poison patterns for fresh and freed blocks, and the checks
// that find the first byte a heap bug changed. Depends on core and ds only;
// the frontend decides, per mode, what to fill and when to verify.
#pragma once

#include "check/canary.h"
#include "check/poison.h"
