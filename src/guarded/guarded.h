// SPDX-License-Identifier: Apache-2.0
// guarded: the guarded pool, blocks between guard pages (Electric Fence /
// GWP-ASan style) for guard=all and hardened sampling. Above slab and large
// (it uses their constants and Origin), below report and frontend.
#pragma once

#include "guarded/guarded_pool.h"
