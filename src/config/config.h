// SPDX-License-Identifier: Apache-2.0
// config: the mode, the option table and the sealed Options snapshot.
#pragma once

#include "config/mode.h"
#include "config/options.h"
