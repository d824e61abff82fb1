//===- SafetensorsTest.cpp - safetensors round trip and corruption --------===//

#include "galvatron/Support/Safetensors.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>

using namespace galvatron;

namespace {

std::string tempPath(const char *name) {
  return testing::TempDir() + name + std::to_string(getpid());
}

SafetensorsTensor f32Tensor(std::vector<int64_t> shape,
                            std::vector<float> values) {
  SafetensorsTensor t;
  t.dtype = "F32";
  t.shape = std::move(shape);
  t.data.resize(values.size() * 4);
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

TEST(Safetensors, RoundTrip) {
  std::map<std::string, SafetensorsTensor> tensors;
  tensors["b.weight"] = f32Tensor({2, 2}, {1, 2, 3, 4});
  tensors["a.bias"] = f32Tensor({3}, {-1, 0.5f, 7});
  std::string path = tempPath("roundtrip"), error;
  ASSERT_TRUE(writeSafetensors(path, tensors, error, {{"format", "pt"}}))
      << error;
  std::map<std::string, SafetensorsTensor> back;
  ASSERT_TRUE(readSafetensors(path, back, error)) << error;
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back["b.weight"].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(back["b.weight"].data, tensors["b.weight"].data);
  EXPECT_EQ(back["a.bias"].data, tensors["a.bias"].data);
  // The data starts 8-byte aligned after the header (8 + header length).
  std::ifstream in(path, std::ios::binary);
  uint64_t headerLength = 0;
  in.read(reinterpret_cast<char *>(&headerLength), 8);
  EXPECT_EQ(headerLength % 8, 0u);
  std::remove(path.c_str());
}

TEST(Safetensors, RefusesWrongSizeAndLeavesNoFile) {
  std::map<std::string, SafetensorsTensor> tensors;
  tensors["w"] = f32Tensor({3}, {1, 2});
  std::string path = tempPath("wrongsize"), error;
  EXPECT_FALSE(writeSafetensors(path, tensors, error));
  EXPECT_NE(error.find("tensor 'w' holds 8 bytes, not the 12"),
            std::string::npos)
      << error;
  EXPECT_NE(access(path.c_str(), F_OK), 0);
}

TEST(Safetensors, RejectsCorruptFiles) {
  std::map<std::string, SafetensorsTensor> tensors;
  tensors["w"] = f32Tensor({4}, {1, 2, 3, 4});
  std::string path = tempPath("corrupt"), error;
  ASSERT_TRUE(writeSafetensors(path, tensors, error)) << error;
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  auto rewrite = [&](const std::string &content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  };
  std::map<std::string, SafetensorsTensor> back;
  rewrite(bytes.substr(0, bytes.size() - 4)); // truncated data
  EXPECT_FALSE(readSafetensors(path, back, error));
  EXPECT_NE(error.find("does not fit its shape or the file"), std::string::npos)
      << error;
  std::string huge = bytes;
  huge[7] = '\x7f'; // header length past the end
  rewrite(huge);
  EXPECT_FALSE(readSafetensors(path, back, error));
  EXPECT_NE(error.find("runs past the end of the file"), std::string::npos)
      << error;
  std::string garbled = bytes;
  garbled[8] = '[';
  rewrite(garbled);
  EXPECT_FALSE(readSafetensors(path, back, error));
  std::remove(path.c_str());
}

} // namespace
