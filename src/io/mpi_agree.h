// Agreeing on failure across the ranks of a communicator, so that an error found on
// one rank in a collective step (the result store, the parallel HDF5 write) reaches
// every rank as the same ringscan::Error, and no rank is left waiting in a collective
// call that the others never make.
#pragma once
#include <mpi.h>

#include <functional>
#include <string>

namespace ringscan::io {

// Runs fn on every rank (fn must not call collectives that could be skipped by a rank
// whose fn throws). If it throws on any rank, every rank throws Error with the message
// of the lowest failing rank.
void agree(MPI_Comm comm, const std::function<void()>& fn);

// Broadcasts a byte string of any length from root.
void bcast_bytes(std::string& s, int root, MPI_Comm comm);

// Concatenates every rank's bytes on root, in rank order ("" on the other ranks).
std::string gather_bytes(const std::string& mine, int root, MPI_Comm comm);

// Throws Error("<context>: <what> failed") unless rc is MPI_SUCCESS.
void check_mpi(int rc, const char* what, const char* context = "result store");

}  // namespace ringscan::io
