//! What a `no_std` contract needs on wasm: an allocator and a panic handler.

#[cfg(target_arch = "wasm32")]
mod wasm {
    use core::alloc::{GlobalAlloc, Layout};
    use core::arch::wasm32;

    const PAGE_BYTES: usize = 65_536;

    /// A bump allocator. Every call runs in a fresh instance whose memory
    /// is thrown away afterwards, so nothing is ever freed; growing the last
    /// allocation happens in place.
    struct Bump;

    static mut NEXT: usize = 0;
    static mut LAST: usize = 0;

    unsafe extern "C" {
        static __heap_base: u8;
    }

    /// Ends the call when memory cannot grow (the contract's page limit,
    /// or its gas), with a message that says so rather than Rust's generic
    /// allocation-failure panic.
    #[cold]
    fn out_of_memory() -> ! {
        crate::env::abort("out of memory")
    }

    /// Grows memory so that it reaches `end`; `false` if it cannot. (No
    /// arithmetic here can panic: a panic path would bring its location
    /// text into every contract.)
    fn reach(end: usize) -> bool {
        let memory_end = wasm32::memory_size(0).wrapping_mul(PAGE_BYTES);
        if end <= memory_end {
            return true;
        }
        let pages = end.wrapping_sub(memory_end).div_ceil(PAGE_BYTES);
        wasm32::memory_grow(0, pages) != usize::MAX
    }

    unsafe impl GlobalAlloc for Bump {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: wasm contracts are single-threaded.
            unsafe {
                if NEXT == 0 {
                    NEXT = core::ptr::addr_of!(__heap_base) as usize;
                }
                let mask = layout.align().wrapping_sub(1);
                let end = NEXT
                    .checked_add(mask)
                    .map(|next| next & !mask)
                    .and_then(|start| Some((start, start.checked_add(layout.size())?)));
                let Some((start, end)) = end.filter(|&(_, end)| reach(end)) else {
                    out_of_memory()
                };
                NEXT = end;
                LAST = start;
                start as *mut u8
            }
        }

        unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: single-threaded; `ptr` came from `alloc`.
            unsafe {
                if ptr as usize == LAST && new_size >= layout.size() {
                    match LAST.checked_add(new_size) {
                        Some(end) if reach(end) => NEXT = end,
                        _ => out_of_memory(),
                    }
                    return ptr;
                }
                let new = self.alloc(Layout::from_size_align_unchecked(new_size, layout.align()));
                core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                new
            }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Bump = Bump;

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
        crate::env::abort("contract panicked")
    }
}
