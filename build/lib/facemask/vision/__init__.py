"""The ground floor: images, faces and the one face crop, without torch (data, inference and web build on it)."""
