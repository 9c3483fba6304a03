// The site the end-to-end suite serves: a production build, the way the image runs it.
/** @type {import('next').NextConfig} */
const config = {
  poweredByHeader: false,
  reactStrictMode: true,
};
export default config;
