// Summarize's prompt (jobs/prompt.h): a --prompt-file goes inside the chat template's
// user turn (it once replaced the template), {question} is filled from --question,
// --no-chat-template keeps the file as the whole prompt, and mismatches are errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "jobs/prompt.h"
#include "tokenizer/demo_tokenizer.h"
#include "util/error.h"
#include "util/json_util.h"

namespace ringscan {
namespace {

class PromptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    file_ = (std::filesystem::temp_directory_path() / "ringscan-test-prompt.txt").string();
    write_text_file(file_, "Question: {question}\n\n{document}\n\nAnswer briefly.");
  }
  void TearDown() override { std::filesystem::remove(file_); }
  // The prompt's text with the document's place marked.
  std::string prompt_text(const PromptOptions& o) const {
    const PromptFrame f = make_prompt_frame(tok_, o);
    return tok_.decode(f.before) + "<DOC>" + tok_.decode(f.after);
  }
  Tokenizer tok_ = Tokenizer::from_json(demo_tokenizer_json(), demo_tokenizer_config_json());
  std::string file_;
};

TEST_F(PromptTest, PromptFileGoesInsideTheChatTemplate) {
  PromptOptions o;
  o.prompt_file = file_;
  o.question = "What does it return?";
  o.system = "Be terse.";
  const std::string text = prompt_text(o);
  EXPECT_EQ(text.rfind("<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nQuestion: What does it return?"
                       "\n\n<DOC>\n\nAnswer briefly.<|im_end|>\n<|im_start|>assistant\n",
                       0),
            0u)
      << text;
}

TEST_F(PromptTest, DefaultInstructionInTheSameTurn) {
  const std::string text = prompt_text(PromptOptions{});
  EXPECT_NE(text.find("<|im_start|>user\nSummarize the following document in a few sentences.\n\n<DOC><|im_end|>"),
            std::string::npos)
      << text;
}

TEST_F(PromptTest, NoChatTemplateKeepsTheFileAsThePrompt) {
  PromptOptions o;
  o.prompt_file = file_;
  o.question = "Why?";
  o.no_chat_template = true;
  const std::string text = prompt_text(o);
  EXPECT_EQ(text.find("<|im_start|>"), std::string::npos) << text;
  EXPECT_NE(text.find("Question: Why?\n\n<DOC>\n\nAnswer briefly."), std::string::npos) << text;
}

TEST_F(PromptTest, QuestionAndPlaceholderGoTogether) {
  PromptOptions o;
  o.prompt_file = file_;
  EXPECT_THROW(make_prompt_frame(tok_, o), Error);  // {question} without --question
  o.prompt_file.clear();
  o.question = "Why?";
  EXPECT_THROW(make_prompt_frame(tok_, o), Error);  // --question without a file to put it in
  PromptOptions raw;
  raw.no_chat_template = true;
  EXPECT_THROW(make_prompt_frame(tok_, raw), Error);  // --no-chat-template without a file
}

}  // namespace
}  // namespace ringscan
