//! Memory for the big list structures: anonymous mappings aligned to 2 MiB and advised for
//! transparent huge pages. A lookup is one or two random reads into hundreds of megabytes; with
//! 4 KiB pages each read also misses the TLB and walks the page tables, with 2 MiB pages the
//! whole structure fits the TLB. The kernel zero-fills the pages, so `zeroed` costs nothing
//! until the pages are written, and `Drop` returns them to the system at once (the old version
//! of a list is freed after a reload, not kept in an allocator's free list).

use std::ptr::NonNull;

const HUGE: usize = 2 << 20;

pub(crate) struct HugeBuf<T: bytemuck::Pod> {
    ptr: NonNull<T>,
    len: usize,
    map_len: usize,
}

// Plain memory owned by this value alone.
unsafe impl<T: bytemuck::Pod + Send> Send for HugeBuf<T> {}
unsafe impl<T: bytemuck::Pod + Sync> Sync for HugeBuf<T> {}

impl<T: bytemuck::Pod> HugeBuf<T> {
    /// `len` zeroed elements. Panics only if the system is out of address space.
    pub(crate) fn zeroed(len: usize) -> HugeBuf<T> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .expect("size overflow");
        if bytes == 0 {
            return HugeBuf {
                ptr: NonNull::dangling(),
                len: 0,
                map_len: 0,
            };
        }
        assert!(std::mem::align_of::<T>() <= 4096);
        let map_len = bytes.div_ceil(HUGE) * HUGE;
        // Map one huge page more, then trim, so the start is 2 MiB aligned.
        let raw_len = map_len + HUGE;
        // SAFETY: an anonymous private mapping with no address hint; checked for failure.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                raw_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(raw != libc::MAP_FAILED, "mmap of {raw_len} bytes failed");
        let start = (raw as usize).div_ceil(HUGE) * HUGE;
        let head = start - raw as usize;
        let tail = raw_len - head - map_len;
        // SAFETY: both ranges lie inside the mapping just made and are not used afterwards.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((start + map_len) as *mut libc::c_void, tail);
            }
            // Advice only: without THP the buffer still works, just with small pages.
            libc::madvise(start as *mut libc::c_void, map_len, libc::MADV_HUGEPAGE);
        }
        HugeBuf {
            ptr: NonNull::new(start as *mut T).expect("mmap returned null"),
            len,
            map_len,
        }
    }
}

impl<T: bytemuck::Pod> std::ops::Deref for HugeBuf<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `ptr` points to `len` initialized (zeroed or written) elements we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: bytemuck::Pod> std::ops::DerefMut for HugeBuf<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: bytemuck::Pod> Drop for HugeBuf<T> {
    fn drop(&mut self) {
        if self.map_len > 0 {
            // SAFETY: the exact range mapped in `zeroed`, unmapped once.
            unsafe {
                libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.map_len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_aligned_and_writable() {
        let mut b = HugeBuf::<u64>::zeroed(1000);
        assert!(b.iter().all(|&w| w == 0));
        assert_eq!(b.as_ptr() as usize % HUGE, 0);
        b[999] = 7;
        assert_eq!(b[999], 7);
        assert_eq!(HugeBuf::<u64>::zeroed(0).len(), 0);
    }
}
