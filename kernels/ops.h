// Every op's declaration, for code that needs several of them.
#pragma once
#include "activations.h"
#include "attention.h"
#include "causal_conv1d.h"
#include "embedding.h"
#include "gated_rmsnorm.h"
#include "linear.h"
#include "log_softmax.h"
#include "rmsnorm.h"
#include "rope.h"
#include "ssd_scan.h"
