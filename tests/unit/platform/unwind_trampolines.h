// SPDX-License-Identifier: Apache-2.0
// Assembly trampolines for stack-capture tests and the capture benchmark:
// functions whose frame layout and unwind tables do not depend on compiler
// flags. Defines the symbols (file-scope asm): include it in one
// translation unit per binary.
#pragma once

// Calls fn(arg) without setting up a frame pointer: rbp passes through
// untouched, so a frame-pointer walk skips the caller of this function.
// Calls fn(arg) with rbp zeroed: a frame-pointer walk stops here. Both carry
// CFI, so libunwind and the CFI walk unwind through them.
// hg_test_nocfi_call is the first without any CFI: the CFI walk stops there.
extern "C" void hg_test_nocfi_call(void (*fn)(void*), void* arg);
extern "C" void hg_test_nofp_call(void (*fn)(void*), void* arg);
extern "C" void hg_test_nofp_call_end();
extern "C" void hg_test_zero_fp_call(void (*fn)(void*), void* arg);
extern "C" void hg_test_zero_fp_call_end();
asm(R"(
  .pushsection .text
  .p2align 4
  .globl hg_test_nofp_call
  .hidden hg_test_nofp_call
  .type hg_test_nofp_call, @function
hg_test_nofp_call:
  .cfi_startproc
  pushq %rbx
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbx, 0
  movq %rdi, %rax
  movq %rsi, %rdi
  callq *%rax
  popq %rbx
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbx
  retq
  .cfi_endproc
  .size hg_test_nofp_call, .-hg_test_nofp_call
  .globl hg_test_nofp_call_end
  .hidden hg_test_nofp_call_end
hg_test_nofp_call_end:
  nop

  .p2align 4
  .globl hg_test_zero_fp_call
  .hidden hg_test_zero_fp_call
  .type hg_test_zero_fp_call, @function
hg_test_zero_fp_call:
  .cfi_startproc
  pushq %rbp
  .cfi_adjust_cfa_offset 8
  .cfi_rel_offset %rbp, 0
  xorl %ebp, %ebp
  movq %rdi, %rax
  movq %rsi, %rdi
  callq *%rax
  popq %rbp
  .cfi_adjust_cfa_offset -8
  .cfi_restore %rbp
  retq
  .cfi_endproc
  .size hg_test_zero_fp_call, .-hg_test_zero_fp_call
  .globl hg_test_zero_fp_call_end
  .hidden hg_test_zero_fp_call_end
hg_test_zero_fp_call_end:
  nop

  .p2align 4
  .globl hg_test_nocfi_call
  .hidden hg_test_nocfi_call
  .type hg_test_nocfi_call, @function
hg_test_nocfi_call:
  pushq %rbx
  movq %rdi, %rax
  movq %rsi, %rdi
  callq *%rax
  popq %rbx
  retq
  .size hg_test_nocfi_call, .-hg_test_nocfi_call
  .popsection
)");
