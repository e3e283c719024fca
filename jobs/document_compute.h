// What the batch jobs compute from a document's final hidden states, on one
// rank (data parallel) or over a group (sequence parallel).
#pragma once
#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "model/model.h"
#include "runtime/layout.h"

namespace ringscan {

struct WantedOutputs {
  bool logprobs = false;    // score: log p(token t | tokens < t)
  bool embeddings = false;  // embed: mean and last final hidden state
  bool generate = false;    // summarize: new tokens after the document (runtime/decode.h)
};

struct DocumentValues {
  // logprob[t] = log p(ids[t] | ids[<t]) for t >= 1; logprob[0] is NaN (nothing predicts the first token).
  std::vector<float> logprob;
  std::vector<float> embedding_mean, embedding_last;  // [hidden] (after norm_f)
};

// The whole document on this rank, prefilled in memory-bounded blocks.
DocumentValues compute_document(Model& model, const std::vector<int32_t>& ids, const WantedOutputs& want);

#ifdef RINGSCAN_WITH_CUDA
class DeviceModel;
// The whole document on this rank's GPU (model/device_model.h): the same
// values, GEMMs with bf16 inputs unless the DeviceModel was made otherwise.
DocumentValues compute_document_on_device(DeviceModel& model, const std::vector<int32_t>& ids, const WantedOutputs& want);
// Short documents stacked into one GPU block (DeviceModel::forward_packed).
std::vector<DocumentValues> compute_documents_packed_on_device(DeviceModel& model,
                                                               const std::vector<std::vector<int32_t>>& docs,
                                                               const WantedOutputs& want);
#endif

// Several short documents on this rank at once (model/packed_forward.h): the
// same values as compute_document of each, with the per-token GEMMs batched.
std::vector<DocumentValues> compute_documents_packed(const Model& model, const std::vector<std::vector<int32_t>>& docs,
                                                     const WantedOutputs& want);

#ifdef RINGSCAN_WITH_CUDA
// The same over GPUs (runtime/device_sequence_parallel.h; group: an MPI
// communicator; ring_comm: an optional NCCL one over the same ranks for the K/V ring).
DocumentValues compute_document_sp_on_device(DeviceModel& model, comm::Communicator& group,
                                             const SequenceLayout& layout,
                                             const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                             const WantedOutputs& want, comm::Communicator* ring_comm = nullptr);
#endif

// Sequence parallel over `group` (every rank of it calls this). `segment_ids`
// returns the ids of a segment plus, when it is not the last, the first id of
// the next one (the target of the segment's last position). Values are
// complete on group rank 0 only; other ranks return empty values.
DocumentValues compute_document_sp(Model& model, comm::Communicator& group, const SequenceLayout& layout,
                                   const std::function<std::vector<int32_t>(const Segment&)>& segment_ids,
                                   const WantedOutputs& want);

}  // namespace ringscan
