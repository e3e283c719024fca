// Which MPI-IO implementation writes the result file, chosen before MPI_Init.
//
// Open MPI 4's default MPI-IO (OMPIO) opens a node-wide named POSIX semaphore,
// /dev/shm/sem.OMPIO_<file name>, in every MPI_File_open, waits on it, posts it and
// unlinks it after a barrier. A process killed between the wait and the post (kill -9,
// a Slurm time limit, the OOM killer) leaves it at 0, and from then on every open of a
// file with that name on the node blocks forever; every result store's final file is
// <out>.parts/result.h5.tmp, so one unlucky kill hangs every later ringscan run on the
// node (it hung CI: tests/io/test_store_kill.cpp kills at random moments). ROMIO keeps
// no such state (it creates shared-file-pointer files only when those are used, and
// HDF5 never uses them), so ringscan asks Open MPI for it unless the user chose an
// MPI-IO component (OMPI_MCA_io set, e.g. by `mpirun --mca io ...`). MPICH's MPI-IO is
// ROMIO already. Header-only so that test mains and probes can call it too.
#pragma once

#include <mpi.h>

#include <cstdlib>

namespace ringscan::comm {

// Call before MPI_Init (MpiSession does): Open MPI reads its MCA variables there.
inline void prefer_romio_before_mpi_init() {
#ifdef OPEN_MPI
  const char* chosen = std::getenv("OMPI_MCA_io");
  if (chosen == nullptr || *chosen == '\0') setenv("OMPI_MCA_io", "^ompio", 1);
#endif
}

}  // namespace ringscan::comm
