//===- Model.h - galvatron-profile model ------------------------*- C++ -*-===//
//
// The `model` subcommand: profiles an imported model's layer types and its
// embedding and head on this machine's runtime. No MPI.
//
//===----------------------------------------------------------------------===//

#ifndef GALVATRON_TOOLS_PROFILE_MODEL_H
#define GALVATRON_TOOLS_PROFILE_MODEL_H

namespace galvatron::profile {

/// `galvatron-profile model ...` (argv[1] is "model"); the exit code.
int runModelCommand(int argc, char **argv);

} // namespace galvatron::profile

#endif // GALVATRON_TOOLS_PROFILE_MODEL_H
