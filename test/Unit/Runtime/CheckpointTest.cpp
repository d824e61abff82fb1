//===- CheckpointTest.cpp - checkpoints, atomic as a set ------------------===//

#include "galvatron/runtime/Checkpoint.h"
#include "galvatron/Support/Crc32.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

using namespace galvatron;
using namespace galvatron::rt;
namespace fs = std::filesystem;

namespace {

std::string freshDir(const std::string &name) {
  std::string dir =
      testing::TempDir() + "checkpoint-" + name + std::to_string(getpid());
  fs::remove_all(dir);
  return dir;
}

CheckpointState stateAt(int step) {
  CheckpointState state;
  state.step = step;
  Tensor w(DType::F32, {2, 2}), m(DType::F32, {2, 2});
  for (int i = 0; i < 4; ++i) {
    w.f32()[i] = step * 10.0f + i;
    m.f32()[i] = -step * 0.5f;
  }
  state.params["w"] = w;
  state.adamM["w"] = m;
  state.adamV["w"] = m;
  return state;
}

TEST(Crc32, MatchesZlib) {
  EXPECT_EQ(crc32Update(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32Update(crc32Update(0, "1234", 4), "56789", 5), 0xCBF43926u);
  EXPECT_EQ(crc32Update(0, "", 0), 0u);
}

TEST(Checkpoint, TrainerStepIsAPositiveInt) {
  int step = 0;
  std::string error;
  EXPECT_TRUE(parseTrainerStep("{\"step\": 1}", step, error));
  EXPECT_EQ(step, 1);
  EXPECT_TRUE(parseTrainerStep("{\"step\": 2147483647}\n", step, error));
  EXPECT_EQ(step, 2147483647);
  for (const char *bad :
       {"{\"step\": -5}", "{\"step\": 0}", "{\"step\": 2147483648}",
        "{\"step\": 1e3}", "{\"step\": 5.0}", "{\"step\": \"5\"}", "{}",
        "{\"step\": 5", "[5]", "{\"step\": 99999999999999999999999}"}) {
    error.clear();
    EXPECT_FALSE(parseTrainerStep(bad, step, error)) << bad;
    EXPECT_NE(error.find("trainer.json"), std::string::npos) << error;
  }
}

TEST(Checkpoint, SavesResolvesAndLoads) {
  std::string root = freshDir("roundtrip"), error, warning, stepDir;
  ASSERT_TRUE(saveCheckpoint(root, stateAt(3), {}, error, warning)) << error;
  EXPECT_EQ(fs::read_symlink(root + "/latest"), "step-000003");
  CheckpointState back;
  ASSERT_TRUE(loadCheckpoint(root, back, stepDir, error)) << error;
  EXPECT_EQ(stepDir, root + "/step-000003");
  EXPECT_EQ(back.step, 3);
  ASSERT_EQ(back.params.size(), 1u);
  ASSERT_EQ(back.adamM.size(), 1u);
  ASSERT_EQ(back.adamV.size(), 1u);
  EXPECT_EQ(back.params["w"].bytes, stateAt(3).params["w"].bytes);
  EXPECT_EQ(back.adamV["w"].bytes, stateAt(3).adamV["w"].bytes);
  fs::remove_all(root);
}

TEST(Checkpoint, KeepsTheNewest) {
  std::string root = freshDir("keep"), error, warning;
  CheckpointSaveOptions options;
  options.keep = 2;
  for (int step = 1; step <= 4; ++step)
    ASSERT_TRUE(saveCheckpoint(root, stateAt(step), options, error, warning))
        << error;
  EXPECT_FALSE(fs::exists(root + "/step-000001"));
  EXPECT_FALSE(fs::exists(root + "/step-000002"));
  EXPECT_TRUE(fs::exists(root + "/step-000003"));
  EXPECT_TRUE(fs::exists(root + "/step-000004"));
  fs::remove_all(root);
}

/// A failure at any point before `latest` switches leaves step 1's
/// checkpoint named, whole and verifiable, and nothing of step 2's.
TEST(Checkpoint, FailureAtEveryPointKeepsThePrevious) {
  std::vector<std::string> points;
  CheckpointSaveOptions tracing;
  tracing.fault = [&](int, const std::string &point) {
    points.push_back(point);
    return 0;
  };
  std::string error, warning;
  std::string traced = freshDir("trace");
  ASSERT_TRUE(saveCheckpoint(traced, stateAt(1), tracing, error, warning));
  fs::remove_all(traced);
  ASSERT_GE(points.size(), 14u);
  bool switched = false;
  for (const std::string &point : points) {
    if (point == "done")
      continue;
    switched |= point == "fsync:root-latest";
    std::string root = freshDir("fault");
    ASSERT_TRUE(saveCheckpoint(root, stateAt(1), {}, error, warning));
    CheckpointSaveOptions failing;
    failing.fault = [&](int, const std::string &at) {
      return at == point ? ENOSPC : 0;
    };
    error.clear();
    bool saved = saveCheckpoint(root, stateAt(2), failing, error, warning);
    EXPECT_FALSE(saved) << point;
    EXPECT_NE(error.find("No space left on device"), std::string::npos)
        << point << ": " << error;
    int step = 0;
    std::string stepDir;
    ASSERT_TRUE(resolveCheckpoint(root, stepDir, error)) << point;
    EXPECT_TRUE(verifyCheckpoint(stepDir, step, error)) << point << error;
    EXPECT_EQ(step, switched ? 2 : 1) << point;
    if (!switched) {
      EXPECT_FALSE(fs::exists(root + "/step-000002")) << point;
      EXPECT_FALSE(fs::exists(root + "/.step-000002.tmp")) << point;
    }
    fs::remove_all(root);
  }
}

} // namespace
