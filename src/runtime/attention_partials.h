// Decode attention spread over ranks (runtime/decode.h, runtime/prefix_decode.h):
// each rank folds the batch's n queries over its own keys into online-softmax
// partials, laid out [acc (n*Hq*d) | m (n*Hq) | l (n*Hq)] (kernels/attention.h),
// and the driver merges every rank's in rank order: exact, the result of one
// pass over all keys up to fp32 round-off.
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "kernels/attention.h"

namespace ringscan {

// Collective over `group`: the driver's n queries (q: n rows of qd floats; null on
// the other ranks) on every rank, broadcast under `label` (nothing sent on one rank).
std::vector<float> queries_from_driver(comm::Communicator& group, int driver, const float* q, int64_t n, int64_t qd,
                                       const char* label);

// Collective over `group`: a rank other than `driver` sends its partials `part`
// (booked under `label`) and gets an empty vector back; the driver receives the
// others' and returns the merge of all of them, its own included, in rank order.
std::vector<float> merge_partials_on_driver(comm::Communicator& group, int driver, const kernels::AttentionShape& shape,
                                            int64_t n, const std::vector<float>& part, const char* label);

}  // namespace ringscan
