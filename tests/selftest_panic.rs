//! Runner self-test: a panicking test must be reported as a failure with the
//! panic in the output. The runner expects this image to fail that way
//! (`expect = "panic"`) and counts it as passed only then.

#![no_std]
#![no_main]

ktests::config!(timeout_secs = 30, expect = "panic");
ktests::main!(passes_first, panics, never_runs);

fn passes_first() {}

fn panics() {
    let v: [u32; 0] = [];
    assert_eq!(v.len(), 1, "deliberate failure for the runner self-test");
}

fn never_runs() {}
