// Tests server/config.cc and server/auth.cc: strict sfd.yaml parsing, embedded defaults,
// refusal of unauthenticated non-loopback TCP, token file checks, constant-time compare.
#include "server/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "server/auth.h"

namespace sfd {
namespace {

namespace fs = std::filesystem;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sfd_config_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream((dir_ / name).string()) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

TEST_F(ConfigTest, ExampleConfigParses) {
  auto c = LoadServerConfig(std::string(SFD_SOURCE_DIR) + "/deploy/sfd.example.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GE(c->queue_limit, 1);
}

TEST_F(ConfigTest, RelativePathsAreRelativeToTheFileAndDefaultsFollowStateDir) {
  auto c = LoadServerConfig(Write("a.yaml", "state_dir: st\nroots: {models: [m1, /abs/m2]}\n"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->state_dir, (dir_ / "st").string());
  ASSERT_EQ(c->model_roots.size(), 2u);
  EXPECT_EQ(c->model_roots[0], (dir_ / "m1").string());
  EXPECT_EQ(c->model_roots[1], "/abs/m2");
  ASSERT_TRUE(FinalizeServerConfig(&*c).ok());
  EXPECT_EQ(c->socket_path, (dir_ / "st/sfd.sock").string());
  EXPECT_EQ(c->output_root, (dir_ / "st/outputs").string());
  EXPECT_TRUE(fs::is_directory(dir_ / "st/logs"));
}

TEST_F(ConfigTest, UnknownKeysAndBadValuesNameTheKey) {
  auto c = LoadServerConfig(Write("b.yaml", "queue_limt: 3\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StrContains(c.status().message(), "queue_limt (line 1): unknown key")) << c.status();
  c = LoadServerConfig(Write("c.yaml", "queue_limit: 0\n"));
  EXPECT_TRUE(absl::StrContains(c.status().message(), "queue_limit")) << c.status();
  c = LoadServerConfig(Write("d.yaml", "tls: {cert: a, keyy: b}\n"));
  EXPECT_TRUE(absl::StrContains(c.status().message(), "tls.keyy")) << c.status();
}

TEST_F(ConfigTest, NonLoopbackTcpNeedsTlsOrToken) {
  auto c = LoadServerConfig(Write("e.yaml", "state_dir: s\ntcp_address: 0.0.0.0:7070\n"));
  ASSERT_TRUE(c.ok());
  absl::Status st = FinalizeServerConfig(&*c);
  EXPECT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "not loopback")) << st;
  c = LoadServerConfig(Write("f.yaml", "state_dir: s\ntcp_address: 127.0.0.1:7070\n"));
  EXPECT_TRUE(FinalizeServerConfig(&*c).ok());
  c = LoadServerConfig(Write("g.yaml", "state_dir: s\ntcp_address: 0.0.0.0:7070\ntoken_file: t\n"));
  EXPECT_TRUE(FinalizeServerConfig(&*c).ok());
  EXPECT_TRUE(IsLoopbackAddress("[::1]:80"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:80"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:80"));
}

TEST_F(ConfigTest, TokenFileMustBePrivateAndLongEnough) {
  const std::string path = Write("token", "  0123456789abcdef0123\n");
  ::chmod(path.c_str(), 0644);
  EXPECT_EQ(ReadTokenFile(path).status().code(), absl::StatusCode::kPermissionDenied);
  ::chmod(path.c_str(), 0600);
  auto t = ReadTokenFile(path);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, "0123456789abcdef0123");
  const std::string short_path = Write("short", "abc");
  ::chmod(short_path.c_str(), 0600);
  EXPECT_FALSE(ReadTokenFile(short_path).ok());
}

TEST(AuthTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("secret-token", "secret-token"));
  EXPECT_FALSE(ConstantTimeEquals("secret-tokeN", "secret-token"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret-token"));
  EXPECT_FALSE(ConstantTimeEquals("secret-token-longer", "secret-token"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

}  // namespace
}  // namespace sfd
