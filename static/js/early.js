// Runs before the first paint (not deferred): with scripts on, a phone shows the navigation behind a Menu button.
document.documentElement.classList.add("js");
