//! Host test bed for the real Xen xenstored.
