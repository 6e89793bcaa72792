// RemoveTree (engine/common/remove_tree.h): removes files, nested trees and dangling links,
// never follows a symlink out of the tree, treats a missing path as done, and reports what it
// could not remove.
#include "engine/common/remove_tree.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace sfd {
namespace {

bool Exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

void Touch(const std::string& p) { std::ofstream(p) << "x"; }

TEST(RemoveTreeTest, RemovesTreesFilesAndNotLinkTargets) {
  const std::string root = ::testing::TempDir() + "/remove_tree_" + std::to_string(::getpid());
  const std::string outside = root + "-outside";
  ASSERT_TRUE(RemoveTree(root).ok());
  ASSERT_TRUE(RemoveTree(outside).ok());
  ASSERT_EQ(::mkdir(root.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/a").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((root + "/a/b").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(outside.c_str(), 0755), 0);
  Touch(root + "/f");
  Touch(root + "/a/b/g");
  Touch(outside + "/keep");
  ASSERT_EQ(::symlink(outside.c_str(), (root + "/a/link").c_str()), 0);
  ASSERT_EQ(::symlink((root + "/nowhere").c_str(), (root + "/dangling").c_str()), 0);

  EXPECT_TRUE(RemoveTree(root).ok());
  EXPECT_FALSE(Exists(root));
  EXPECT_TRUE(Exists(outside + "/keep")) << "followed a symlink out of the tree";
  EXPECT_TRUE(RemoveTree(root).ok()) << "a missing path is not an error";

  Touch(outside + "/file");
  EXPECT_TRUE(RemoveTree(outside + "/file").ok());
  EXPECT_FALSE(Exists(outside + "/file"));

  if (::geteuid() != 0) {  // root may delete from a read-only directory
    ASSERT_EQ(::mkdir((outside + "/ro").c_str(), 0755), 0);
    Touch(outside + "/ro/x");
    ASSERT_EQ(::chmod((outside + "/ro").c_str(), 0555), 0);
    absl::Status st = RemoveTree(outside + "/ro");
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find(outside + "/ro"), std::string::npos) << st;
    ::chmod((outside + "/ro").c_str(), 0755);
  }
  EXPECT_TRUE(RemoveTree(outside).ok());
  EXPECT_FALSE(Exists(outside));
}

}  // namespace
}  // namespace sfd
